"""`python -m weightkit`: what the manifest offers, what a workflow needs, fetching, verifying and adding
weights.

Each subcommand is a `Command` in `COMMANDS`: a name, a help line, a function adding its arguments and a
function running it with the parsed arguments and a `Context`: a `WeightStore` (manifest, search paths,
records and downloader, each built on first use) whose manifest has the custom node lock's pack weights,
loaders and needs merged in, and the lock itself. Adding a subcommand is adding one entry (`add` writes
into the user manifest, which it may create). Exit status: 0 done, 1 the answer is "no" (a weight is
missing and cannot be fetched, a download failed, a hash is wrong, a host could not say what a URL is, a
workflow's custom nodes are not all known or installed), 2 bad input (arguments, workflow, manifest,
lock, config).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from nodekit.errors import NodekitError
from nodekit.lock import load_lock
from nodekit.settings import NodeSettings
from nodekit.weights import manifest_with_lock
from weightkit.cli.add import configure_add, run_add
from weightkit.cli.catalog import configure_kits, configure_list, run_kits, run_list
from weightkit.cli.common import EXIT_BAD_INPUT, EXIT_NO, Command, Context
from weightkit.cli.fetch import configure_download, configure_verify, run_download, run_verify
from weightkit.cli.plan import configure_nodes, configure_plan, run_nodes, run_plan
from weightkit.download import progress_for
from weightkit.errors import (
    AddWeightError,
    CivitaiError,
    DiskSpaceError,
    DownloadError,
    DownloadsFailedError,
    WeightkitError,
)
from weightkit.settings import WeightSettings
from weightkit.store import WeightStore

__all__ = ["COMMANDS", "main"]


# ---- the command line -------------------------------------------------------------------------------

COMMANDS: list[Command] = [
    Command("list", "list the weights of the manifest", configure_list, run_list),
    Command("kits", "list the model kits (BASE_MODEL_KIT values)", configure_kits, run_kits),
    Command(
        "plan",
        "what a workflow needs, what is present, what would be fetched",
        configure_plan,
        run_plan,
    ),
    Command(
        "nodes",
        "which custom node packs a workflow needs, which are in the lock and installed, what to add",
        configure_nodes,
        run_nodes,
    ),
    Command("download", "download weights by name, kit or workflow", configure_download, run_download),
    Command("verify", "re-hash the weights on disk and report", configure_verify, run_verify),
    Command(
        "add",
        "write a verified entry for a weight's URL into your manifest (WEIGHTS_MANIFEST_EXTRA)",
        configure_add,
        run_add,
    ),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m weightkit",
        description="Model weights for ComfyUI workflows: the manifest, and what a workflow needs.",
        epilog="Defaults come from COMFYUI_PATH, WEIGHTS_DIR, EXTRA_MODEL_PATHS_CONFIG, "
        "WEIGHTS_MANIFEST_EXTRA and CUSTOM_NODES_LOCK.",
    )
    parser.add_argument(
        "--manifest", type=Path, help="the manifest (default: the built-in weights_manifest.json)"
    )
    parser.add_argument(
        "--manifest-extra", type=Path, help="a manifest merged over it (WEIGHTS_MANIFEST_EXTRA)"
    )
    parser.add_argument(
        "--custom-nodes",
        type=Path,
        help="the custom node lock (CUSTOM_NODES_LOCK, default custom_nodes.json)",
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
    # `add` creates the user manifest it writes into: until then the built-in one is all there is.
    extra = settings.manifest_extra
    creating = getattr(args, "_creates_manifest_extra", False) and extra is not None and not extra.exists()
    read = dataclasses.replace(settings, manifest_extra=None) if creating else settings
    try:
        lock = load_lock(args.custom_nodes or NodeSettings.from_env().lock_path)
        store = WeightStore(settings, manifest=manifest_with_lock(read, lock), progress=progress)
        return args._command.run(args, Context(store=store, lock=lock))
    except (DownloadError, DownloadsFailedError, DiskSpaceError, AddWeightError, CivitaiError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NO
    except (WeightkitError, NodekitError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
