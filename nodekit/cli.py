"""`python -m nodekit`: install the lock's custom node packs, show what is installed, tidy the lock.

    python -m nodekit install                 # the selection of CUSTOM_NODES_INSTALL (the lock's default)
    python -m nodekit install --only NAME ... # just these packs
    python -m nodekit install --all           # every pack of the lock
    python -m nodekit status                  # installed vs lock, a line per pack
    python -m nodekit format [--check]        # rewrite custom_nodes.json in its canonical form

Which packs a workflow needs is `python -m weightkit nodes WORKFLOW` (and part of `plan`). Exit status:
0 done, 1 the answer is "no" (a pack failed to install, is missing or at another commit), 2 bad input.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from comfyrun.settings import RuntimeSettings
from nodekit.errors import NodekitError
from nodekit.gitrepo import GitSource
from nodekit.install import Installer
from nodekit.lock import Lock, Pack, load_lock
from nodekit.settings import NodeSettings
from nodekit.status import pack_states, status_line, unlisted_packs
from weightkit.errors import WeightkitError

__all__ = ["main"]

EXIT_OK, EXIT_NO, EXIT_BAD_INPUT = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m nodekit",
        description="Custom node packs for ComfyUI, pinned in custom_nodes.json.",
        epilog="Defaults come from CUSTOM_NODES_LOCK, CUSTOM_NODES_INSTALL, CUSTOM_NODES_GIT_BASE, "
        "COMFYUI_PATH and COMFYUI_PYTHON.",
    )
    parser.add_argument("--lock", type=Path, help="the lock file (CUSTOM_NODES_LOCK)")
    parser.add_argument("--comfyui", type=Path, help="the ComfyUI checkout (COMFYUI_PATH)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="also pip's output")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    install = commands.add_parser("install", help="install packs at their lock commits, with requirements")
    install.add_argument(
        "--only", nargs="+", metavar="NAME", help="these packs (default: CUSTOM_NODES_INSTALL)"
    )
    install.add_argument("--all", action="store_true", help="every pack of the lock")
    install.add_argument(
        "--python", help="the Python whose environment gets the requirements (COMFYUI_PYTHON)"
    )
    install.add_argument(
        "--git-base", help="replaces https://github.com/ in repositories (CUSTOM_NODES_GIT_BASE)"
    )
    status = commands.add_parser("status", help="what custom_nodes/ holds against the lock")
    status.add_argument("--all", action="store_true", help="every pack of the lock, not only the selection")
    fmt = commands.add_parser("format", help="rewrite the lock in its canonical form (sorted, stable)")
    fmt.add_argument("--check", action="store_true", help="only say whether it is canonical")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(message)s")
    try:
        settings = NodeSettings.from_env()
        if args.lock is not None:
            settings = dataclasses.replace(settings, lock_path=args.lock)
        runtime = RuntimeSettings.from_env()
        comfyui = Target(
            custom_nodes=(args.comfyui or runtime.comfyui_path) / "custom_nodes",
            python=getattr(args, "python", None) or runtime.python,
        )
        lock = load_lock(settings.lock_path)
        if args.command == "install":
            return _install(args, settings, lock, comfyui)
        if args.command == "status":
            return _status(args, settings, lock, comfyui)
        return _format(args, settings, lock)
    except (NodekitError, WeightkitError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


@dataclasses.dataclass(frozen=True)
class Target:
    """The ComfyUI being worked on: its custom_nodes/ folder and the Python that runs it."""

    custom_nodes: Path
    python: str


def _selection(args: argparse.Namespace, settings: NodeSettings, lock: Lock) -> list[Pack]:
    if getattr(args, "only", None):
        return lock.select(args.only)
    if args.all:
        return list(lock.packs)
    return lock.selection(settings.install, setting="CUSTOM_NODES_INSTALL")


def _install(args: argparse.Namespace, settings: NodeSettings, lock: Lock, comfyui: Target) -> int:
    packs = _selection(args, settings, lock)
    if not packs:
        print("No custom node packs selected (CUSTOM_NODES_INSTALL=none, or the lock selects none).")
        return EXIT_OK
    source = GitSource(base=args.git_base or settings.git_base)
    installer = Installer(comfyui.custom_nodes, python=comfyui.python, source=source)
    results, failures = installer.install(packs)
    done = {action: sum(r.action == action for r in results) for action in ("installed", "updated", "kept")}
    print(
        f"{len(results)} of {len(packs)} custom node pack(s) in {comfyui.custom_nodes}: "
        f"{done['installed']} installed, {done['updated']} updated, {done['kept']} already there"
        + (f"; {len(failures)} failed: {', '.join(failures)}." if failures else ".")
    )
    for error in failures.values():
        print(f"error: {error}", file=sys.stderr)
    return EXIT_NO if failures else EXIT_OK


def _status(args: argparse.Namespace, settings: NodeSettings, lock: Lock, comfyui: Target) -> int:
    packs = list(lock.packs) if args.all else lock.selection(settings.install, setting="CUSTOM_NODES_INSTALL")
    states = pack_states(packs, comfyui.custom_nodes)
    for state in states:
        print(f"{state.state:<15} {state.pack.name:<34} lock {state.pack.commit[:7]}  {state.path}")
    print(status_line(states, unlisted_packs(lock, comfyui.custom_nodes)))
    return EXIT_OK if all(state.ok for state in states) else EXIT_NO


def _format(args: argparse.Namespace, settings: NodeSettings, lock: Lock) -> int:
    path = settings.lock_path
    canonical = lock.dumps()
    if path.read_text(encoding="utf-8") == canonical:
        print(f"{path} is in canonical form.")
        return EXIT_OK
    if args.check:
        print(f"{path} is not in canonical form: run `python -m nodekit format`.")
        return EXIT_NO
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(canonical, encoding="utf-8")
    temporary.replace(path)
    print(f"rewrote {path} in canonical form.")
    return EXIT_OK
