"""`python -m weightkit`: what the manifest offers, what a workflow needs, fetching and verifying weights.

Each subcommand is a `Command` in `COMMANDS`: a name, a help line, a function adding its arguments and a
function running it with the parsed arguments and a `WeightStore` (manifest, search paths, records and
downloader, each built on first use). Adding a subcommand is adding one entry. Exit status: 0 done, 1 the
answer is "no" (a weight is missing and cannot be fetched, a download failed, a hash is wrong), 2 bad input
(arguments, workflow, manifest, config).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

from weightkit.check import CheckReport, missing_weights_error, verify_present
from weightkit.download import progress_for
from weightkit.errors import DiskSpaceError, DownloadError, DownloadsFailedError, WeightkitError
from weightkit.extract import WeightRef
from weightkit.folders import canonical_folder
from weightkit.manifest import WeightEntry
from weightkit.settings import WeightSettings
from weightkit.store import WeightStore
from weightkit.units import format_bytes, format_total
from weightkit.urlforms import display_url, normalise_weight_url

__all__ = ["COMMANDS", "Command", "main"]

EXIT_OK, EXIT_NO, EXIT_BAD_INPUT = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class Command:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, WeightStore], int]


# ---- list -------------------------------------------------------------------------------------------


def _configure_list(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--folder", help="only weights of this model folder (e.g. loras)")
    parser.add_argument("--kit", help="only weights of this kit (see `kits`)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _run_list(args: argparse.Namespace, store: WeightStore) -> int:
    manifest = store.manifest
    entries: list[WeightEntry] = (
        manifest.kit_entries(args.kit) if args.kit else list(manifest.entries.values())
    )
    if args.folder:
        entries = [e for e in entries if e.folder == canonical_folder(args.folder)]
    if args.json:
        _print_json([entry.to_json() for entry in entries])
        return EXIT_OK
    rows = [
        (entry.key, format_bytes(entry.size), entry.license or "unknown license", _flags(entry))
        for entry in entries
    ]
    _print_table(rows, right_aligned={1})
    total = format_total(entry.size for entry in entries)
    print(f"{len(entries)} weight{'s' if len(entries) != 1 else ''}, {total} in all.")
    return EXIT_OK


def _left_to_host(ref: WeightRef) -> bool:
    return ref.entry is not None and ref.entry.left_to_host


def _flags(entry: WeightEntry) -> str:
    return ", ".join(
        flag for flag, on in (("gated", entry.gated), ("non-commercial", entry.non_commercial)) if on
    )


# ---- kits -------------------------------------------------------------------------------------------


def _configure_kits(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _run_kits(args: argparse.Namespace, store: WeightStore) -> int:
    manifest = store.manifest
    kits = []
    for kit in manifest.kits.values():
        entries = manifest.kit_entries(kit.name)
        kits.append((kit, [entry.size for entry in entries]))
    if args.json:
        _print_json(
            [
                {
                    "name": kit.name,
                    "description": kit.description,
                    "weights": list(kit.weights),
                    "size": None if None in sizes else sum(s for s in sizes if s is not None),
                }
                for kit, sizes in kits
            ]
        )
        return EXIT_OK
    _print_table(
        [
            (
                kit.name,
                f"{len(kit.weights)} file{'s' if len(kit.weights) != 1 else ''}",
                format_total(sizes),
                kit.description,
            )
            for kit, sizes in kits
        ],
        right_aligned={1, 2},
    )
    return EXIT_OK


# ---- plan -------------------------------------------------------------------------------------------


def _configure_plan(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("workflow", help="an API-format workflow JSON file ('-' reads standard input)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _run_plan(args: argparse.Namespace, store: WeightStore) -> int:
    text = sys.stdin.buffer.read() if args.workflow == "-" else Path(args.workflow).read_bytes()
    manifest = store.manifest
    refs = store.required(text)
    report = store.check_refs(refs, verified=True)
    fetch = (*report.to_fetch, *report.from_urls)
    fetch_sizes = [ref.entry.size if ref.entry is not None else None for ref in fetch]
    fetch_bytes = sum(size for size in fetch_sizes if size is not None)
    status = _statuses(report)
    if args.json:
        _print_json(
            {
                "weights": [_plan_json(ref, *status[ref]) for ref in refs],
                "fetch_count": len(fetch),
                "fetch_bytes": fetch_bytes,
                "ok": not report.unfetchable,
            }
        )
    else:
        print(
            f"The workflow needs {len(refs)} weight file{'s' if len(refs) != 1 else ''}: "
            f"{len(report.present)} present, {len(fetch)} to fetch, {len(report.unfetchable)} missing that "
            f"cannot be fetched, {len(report.unplaced)} in an unknown folder."
        )
        rows = []
        for ref in refs:
            state, path, note = status[ref]
            where = f"node {ref.node_id} {ref.class_type}.{ref.input_name}"
            rows.append((state, _label(ref), _size(ref), where, " ".join(filter(None, (path, note)))))
        _print_table(rows, right_aligned={2})
        print(f"Would fetch {len(fetch)} file{'s' if len(fetch) != 1 else ''}, {format_total(fetch_sizes)}.")
    if report.unfetchable:
        cannot = CheckReport(missing=report.unfetchable)
        print(missing_weights_error(cannot, store.paths, manifest), file=sys.stderr)
        return EXIT_NO
    return EXIT_OK


def _statuses(report: CheckReport) -> dict[WeightRef, tuple[str, str, str]]:
    """ref → (status, path, note): present, refetch (wrong size or hash), fetch, missing, unknown."""
    status: dict[WeightRef, tuple[str, str, str]] = {}
    for found in report.present:
        status[found.ref] = ("present", str(found.path), "(verified)" if found.verified else "")
    for found in report.wrong_size:
        status[found.ref] = ("refetch", str(found.path), f"is {format_bytes(found.size)}, wrong size")
    for found in report.wrong_hash:
        status[found.ref] = ("refetch", str(found.path), "wrong sha256")
    for ref in report.missing:
        if ref.entry is not None:
            status[ref] = ("fetch", "", _entry_note(ref.entry))
        elif ref.url is not None:
            status[ref] = ("fetch", "", f"from {display_url(normalise_weight_url(ref.url))} (not verifiable)")
        else:
            status[ref] = ("missing", "", "not in the manifest: cannot be fetched")
    for ref in report.unplaced:
        status[ref] = ("unknown", "", "folder unknown: not checked")
    return status


def _entry_note(entry: WeightEntry) -> str:
    flags = _flags(entry)
    return entry.key + (f" ({flags})" if flags else "")


def _label(ref: WeightRef) -> str:
    return f"{ref.folder}/{ref.name}" if ref.folder else ref.name


def _size(ref: WeightRef) -> str:
    return format_bytes(ref.entry.size) if ref.entry is not None else "?"


def _plan_json(ref: WeightRef, status: str, path: str, note: str) -> dict[str, Any]:
    return {
        "status": status,
        "name": ref.name,
        "folder": ref.folder,
        "node_id": ref.node_id,
        "class_type": ref.class_type,
        "input_name": ref.input_name,
        "manifest_key": ref.entry.key if ref.entry else None,
        "size": ref.entry.size if ref.entry else None,
        "path": path or None,
        "note": note or None,
    }


# ---- download ---------------------------------------------------------------------------------------


def _configure_download(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME", help="weights by name, alias or folder/name")
    parser.add_argument("--kit", action="append", default=[], help="every weight of this kit (repeatable)")
    parser.add_argument(
        "--workflow", action="append", default=[], type=Path, help="every weight this workflow needs"
    )


def _run_download(args: argparse.Namespace, store: WeightStore) -> int:
    if not (args.names or args.kit or args.workflow):
        print("error: name a weight, a --kit or a --workflow to download", file=sys.stderr)
        return EXIT_BAD_INPUT
    workflows = [path.read_bytes() for path in args.workflow]
    summary = store.preload(kits=args.kit, workflows=workflows, names=args.names)
    print(
        f"{summary.files} file{'s' if summary.files != 1 else ''} in {store.settings.weights_dir}: "
        f"{summary.present} already present, {format_bytes(summary.bytes)} downloaded in "
        f"{summary.seconds:.1f} s ({summary.mb_per_s:.0f} MB/s)."
    )
    return EXIT_OK


# ---- verify -----------------------------------------------------------------------------------------


def _configure_verify(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME", help="only these weights (default: all on disk)")
    parser.add_argument("--kit", action="append", default=[], help="only the weights of this kit")


def _run_verify(args: argparse.Namespace, store: WeightStore) -> int:
    """Re-hash every manifest weight found on disk, ignoring earlier records, and record the answers."""
    named = bool(args.names or args.kit)
    entries = store.entries_for(kits=args.kit, names=args.names) if named else store.manifest.entries.values()
    refs = [WeightRef.of_entry(entry) for entry in entries]
    report = verify_present(store.check_refs(refs, verified=True), store.records, rehash=True)
    found = {
        f.ref: ("ok" if f.verified or not _left_to_host(f.ref) else "unverified", f) for f in report.present
    }
    found |= {f.ref: ("wrong sha256", f) for f in report.wrong_hash}
    found |= {f.ref: ("wrong size", f) for f in report.wrong_size}
    rows = []
    for ref in refs:
        if ref in found:
            status, weight = found[ref]
            rows.append((status, ref.label, format_bytes(weight.size), str(weight.path)))
        elif named:
            rows.append(("missing", ref.label, _size(ref), ""))
    bad = sum(row[0] != "ok" for row in rows)
    _print_table(rows, right_aligned={2})
    print(f"{len(rows) - bad} of {len(rows)} verified" + (f", {bad} bad" if bad else "") + ".")
    return EXIT_NO if bad else EXIT_OK


# ---- the command line -------------------------------------------------------------------------------

COMMANDS: list[Command] = [
    Command("list", "list the weights of the manifest", _configure_list, _run_list),
    Command("kits", "list the model kits (BASE_MODEL_KIT values)", _configure_kits, _run_kits),
    Command(
        "plan",
        "what a workflow needs, what is present, what would be fetched",
        _configure_plan,
        _run_plan,
    ),
    Command("download", "download weights by name, kit or workflow", _configure_download, _run_download),
    Command("verify", "re-hash the weights on disk and report", _configure_verify, _run_verify),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m weightkit",
        description="Model weights for ComfyUI workflows: the manifest, and what a workflow needs.",
        epilog="Defaults come from COMFYUI_PATH, WEIGHTS_DIR, EXTRA_MODEL_PATHS_CONFIG and "
        "WEIGHTS_MANIFEST_EXTRA.",
    )
    parser.add_argument(
        "--manifest", type=Path, help="the manifest (default: the built-in weights_manifest.json)"
    )
    parser.add_argument(
        "--manifest-extra", type=Path, help="a manifest merged over it (WEIGHTS_MANIFEST_EXTRA)"
    )
    parser.add_argument("--weights-dir", type=Path, help="the project's weights directory (WEIGHTS_DIR)")
    parser.add_argument("--comfyui", type=Path, help="the ComfyUI checkout (COMFYUI_PATH)")
    parser.add_argument(
        "--extra-model-paths-config", type=Path, help="an extra_model_paths.yaml (EXTRA_MODEL_PATHS_CONFIG)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what is being done")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        sub = subparsers.add_parser(command.name, help=command.help, description=command.help)
        command.configure(sub)
        sub.set_defaults(_command=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    settings = WeightSettings.from_env()
    overrides = {
        "manifest_path": args.manifest,
        "manifest_extra": args.manifest_extra,
        "weights_dir": args.weights_dir,
        "comfyui_path": args.comfyui,
        "extra_model_paths": args.extra_model_paths_config,
    }
    settings = dataclasses.replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    progress = progress_for(sys.stderr, interval=settings.download.progress_interval)
    try:
        return args._command.run(args, WeightStore(settings, progress=progress))
    except (DownloadError, DownloadsFailedError, DiskSpaceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NO
    except (WeightkitError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _print_table(rows: Sequence[Sequence[str]], *, right_aligned: Collection[int] = ()) -> None:
    if not rows:
        return
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in right_aligned else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        print("  ".join(cells).rstrip())
