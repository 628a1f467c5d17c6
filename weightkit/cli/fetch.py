"""`download` and `verify`: weights fetched into place, and hashed again."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from weightkit.check import verify_present
from weightkit.cli.common import EXIT_BAD_INPUT, EXIT_NO, EXIT_OK, Context, left_to_host, print_table, size_of
from weightkit.extract import WeightRef
from weightkit.units import format_bytes

__all__ = ["configure_download", "configure_verify", "run_download", "run_verify"]


# ---- download ---------------------------------------------------------------------------------------


def configure_download(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME", help="weights by name, alias or folder/name")
    parser.add_argument("--kit", action="append", default=[], help="every weight of this kit (repeatable)")
    parser.add_argument(
        "--workflow", action="append", default=[], type=Path, help="every weight this workflow needs"
    )


def run_download(args: argparse.Namespace, context: Context) -> int:
    store = context.store
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


def configure_verify(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME", help="only these weights (default: all on disk)")
    parser.add_argument("--kit", action="append", default=[], help="only the weights of this kit")


def run_verify(args: argparse.Namespace, context: Context) -> int:
    """Re-hash every manifest weight found on disk, ignoring earlier records, against the manifest's sha256
    or the one its host stated at download (kept in its record), and record the answers."""
    store = context.store
    named = bool(args.names or args.kit)
    entries = store.entries_for(kits=args.kit, names=args.names) if named else store.manifest.entries.values()
    refs = [WeightRef.of_entry(entry) for entry in entries]
    report = verify_present(store.check_refs(refs, verified=True), store.records, rehash=True)
    found = {
        f.ref: ("ok" if f.verified or not left_to_host(f.ref) else "unverified", f) for f in report.present
    }
    found |= {f.ref: ("wrong sha256", f) for f in report.wrong_hash}
    found |= {f.ref: ("wrong size", f) for f in report.wrong_size}
    rows = []
    for ref in refs:
        if ref in found:
            status, weight = found[ref]
            rows.append((status, ref.label, format_bytes(weight.size), str(weight.path)))
        elif named:
            rows.append(("missing", ref.label, size_of(ref), ""))
    bad = sum(row[0] != "ok" for row in rows)
    print_table(rows, right_aligned={2})
    print(f"{len(rows) - bad} of {len(rows)} verified" + (f", {bad} bad" if bad else "") + ".")
    return EXIT_NO if bad else EXIT_OK
