"""Install custom node packs at their lock commits into ComfyUI's `custom_nodes/`, with their requirements.

First, under the installer lock, what a killed installer left is undone (`nodekit.swap.recover_leftovers`).
Then for each pack, in order:

1. already at the commit with the same requirements, clones and Python (a stamp in its `.git`): kept;
2. otherwise the repository is fetched at the commit into a staging directory beside the target
   (`custom_nodes/.nodekit-NAME-*.disabled`, a name ComfyUI's loader skips), submodules recursively,
   then the lock's `clones` inside it;
3. its requirements (the lock's `requirements`, else its `requirements.txt` and each clone's) are
   installed into ComfyUI's Python with every protected distribution as a pip constraint and as a
   requirement (`nodekit.pip`), with `--break-system-packages` where that Python is externally managed;
4. files git does not track in the old checkout (the pack's config, its downloads) are carried into the
   staging directory, which is then renamed into place; a previous checkout is first renamed aside and
   then removed, so `custom_nodes/NAME` is always a complete checkout or absent (`nodekit.swap`).

A failure leaves the old checkout (if any) untouched and removes the staging directory; an `OSError` on
the way is a `PackInstallError` for that pack, and the other packs still install. One installer at a
time per `custom_nodes/` (an flock, which only saves work: correctness comes from the renames).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from nodekit.errors import (
    ComfyUINotFoundError,
    InstallBlockedError,
    NodekitError,
    PackFetchError,
    PackInstallError,
)
from nodekit.gitrepo import GitError, GitSource, head_commit, is_dirty
from nodekit.lock import Pack
from nodekit.pip import TargetPython, read_requirements_text
from nodekit.swap import carry_untracked, make_staging_dir, recover_leftovers, swap_into_place

__all__ = ["GIT_BASE_SETTING", "InstallResult", "Installer"]

logger = logging.getLogger(__name__)

GIT_BASE_SETTING = "CUSTOM_NODES_GIT_BASE"
_STAMP = "nodekit-install.json"  # inside the pack's .git: never part of the checkout
_LOCK_FILE = ".nodekit-install.lock"


@dataclass(frozen=True)
class InstallResult:
    """What happened to one pack: `installed` (new), `updated` (another commit before) or `kept`."""

    pack: str
    action: str
    commit: str
    seconds: float


class Installer:
    """Installs packs into `custom_nodes_dir` for the ComfyUI at its parent, with `python`'s pip.

    The constructor touches nothing; `install()` takes the installer lock and does the work.
    """

    def __init__(self, custom_nodes_dir: Path, *, python: str, source: GitSource | None = None) -> None:
        self.custom_nodes_dir = Path(custom_nodes_dir)
        self.python = python
        self.source = source or GitSource()
        self._target_python: TargetPython | None = None

    def target_python(self, pack: str) -> TargetPython:
        """ComfyUI's Python as pip sees it, asked once (for the first pack with requirements)."""
        if self._target_python is not None:
            return self._target_python
        found = self._target_python = TargetPython.probe(self.python, pack=pack)
        if found.externally_managed:
            logger.info(
                "custom nodes: %s is externally managed (PEP 668): pip runs with --break-system-packages, "
                "as cog build does for such Pythons",
                found.executable,
            )
        return found

    def install(self, packs: Sequence[Pack]) -> tuple[list[InstallResult], dict[str, NodekitError]]:
        """Install every pack it can; returns what was done and, by pack name, what failed."""
        comfyui = self.custom_nodes_dir.parent
        if not comfyui.is_dir():
            raise ComfyUINotFoundError(str(comfyui))
        results: list[InstallResult] = []
        failures: dict[str, NodekitError] = {}
        with self._installer_lock():
            try:
                recover_leftovers(self.custom_nodes_dir)
            except OSError as exc:
                raise PackInstallError(
                    None, path=str(exc.filename or self.custom_nodes_dir), reason=_cause(exc)
                ) from exc
            for pack in packs:
                try:
                    results.append(self.install_one(pack))
                except NodekitError as exc:
                    logger.error("custom nodes: %s", exc)
                    failures[pack.name] = exc
        return results, failures

    def install_one(self, pack: Pack) -> InstallResult:
        """Install `pack` (see the module's steps); raises a `NodekitError` naming the pack."""
        started = time.monotonic()
        target = self.custom_nodes_dir / pack.name
        current = self._current_commit(pack, target)
        want = self._stamp(pack)
        if current == pack.commit and _read_stamp(target) == want:
            logger.info("custom nodes: %s already at %s", pack.name, pack.commit[:7])
            return InstallResult(pack.name, "kept", pack.commit, time.monotonic() - started)
        self._check_replaceable(pack, target, current)
        logger.info(
            "custom nodes: installing %s at %s from %s%s",
            pack.name,
            pack.commit[:7],
            self.source.url(pack.repository),
            f" (was {current[:7]})" if current else "",
        )
        try:
            self._stage_and_swap(pack, target, want, old=current is not None)
        except NodekitError:
            raise
        except OSError as exc:
            raise PackInstallError(pack.name, path=str(exc.filename or target), reason=_cause(exc)) from exc
        action = "updated" if current else "installed"
        seconds = time.monotonic() - started
        logger.info("custom nodes: %s %s at %s in %.1f s", action, pack.name, pack.commit[:7], seconds)
        return InstallResult(pack.name, action, pack.commit, seconds)

    def _stage_and_swap(self, pack: Pack, target: Path, want: dict[str, object], *, old: bool) -> None:
        staging = make_staging_dir(self.custom_nodes_dir, pack.name)
        try:
            self._fetch(pack.name, pack.repository, pack.commit, staging)
            for clone in pack.clones:
                (staging / clone.path).parent.mkdir(parents=True, exist_ok=True)
                self._fetch(pack.name, clone.repository, clone.commit, staging / clone.path)
            self._install_requirements(pack, staging)
            if old:
                self._carry_untracked(pack, target, staging)
            (staging / ".git" / _STAMP).write_text(json.dumps(want, sort_keys=True) + "\n", encoding="utf-8")
            swap_into_place(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def _current_commit(self, pack: Pack, target: Path) -> str | None:
        """The commit at `target`, None when nothing there has a `.git`."""
        try:
            return head_commit(target)
        except GitError as exc:
            raise _unreadable(pack, target, exc) from exc

    def _check_replaceable(self, pack: Pack, target: Path, current: str | None) -> None:
        """Raises `InstallBlockedError` for what may not be replaced: not a checkout, or local changes."""
        if not os.path.lexists(target):
            return
        if current is None:
            raise InstallBlockedError(
                pack.name, path=str(target), reason="it exists and is not a git checkout"
            )
        try:
            dirty = is_dirty(target)
        except GitError as exc:
            raise _unreadable(pack, target, exc) from exc
        if dirty:
            raise InstallBlockedError(
                pack.name, path=str(target), reason=f"it is a checkout at {current[:7]} with local changes"
            )

    def _carry_untracked(self, pack: Pack, target: Path, staging: Path) -> None:
        old_stamp = _read_stamp(target)
        old_clones = old_stamp.get("clones", []) if isinstance(old_stamp, dict) else []
        skip = [clone["path"] for clone in old_clones if isinstance(clone, dict) and "path" in clone]
        try:
            carried = carry_untracked(target, staging, skip=skip)
        except GitError as exc:
            raise _unreadable(pack, target, exc) from exc
        if carried:
            logger.info(
                "custom nodes: carried %d untracked path(s) of %s into the new checkout", carried, pack.name
            )

    def _fetch(self, pack: str, repository: str, commit: str, dest: Path) -> None:
        try:
            self.source.fetch_commit(repository, commit, dest)
        except GitError as exc:
            raise PackFetchError(
                pack,
                url=self.source.url(repository),
                commit=commit,
                reason=exc.reason,
                setting=GIT_BASE_SETTING,
            ) from exc

    def _requirement_lines(self, pack: Pack, checkout: Path) -> list[str]:
        """What pip is given: the lock's `requirements` (which replace everything else), else `-r` of the
        pack's requirements.txt and of each clone's."""
        if pack.requirements is not None:
            return list(pack.requirements)
        files = [
            checkout / "requirements.txt",
            *(checkout / clone.path / "requirements.txt" for clone in pack.clones),
        ]
        return [f"-r {path}" for path in files if path.is_file() and _has_requirements(path)]

    def _install_requirements(self, pack: Pack, checkout: Path) -> None:
        lines = self._requirement_lines(pack, checkout)
        if not lines:
            return
        python = self.target_python(pack.name)
        constraints = python.constraints(self.custom_nodes_dir.parent / "requirements.txt")
        with tempfile.TemporaryDirectory(prefix="nodekit-pip-") as scratch:
            requirements = Path(scratch) / "requirements.txt"
            # The kept pins are requirements too: pip checks the dependencies of what it is asked for,
            # never those of an installed distribution nothing asks for (torch's own, say).
            requirements.write_text("\n".join([*lines, *constraints]) + "\n", encoding="utf-8")
            kept = Path(scratch) / "constraints.txt"
            kept.write_text("".join(line + "\n" for line in constraints), encoding="utf-8")
            logger.info(
                "custom nodes: installing the requirements of %s into %s, keeping %s",
                pack.name,
                python.executable,
                ", ".join(constraints) or "nothing (none of torch & co. is installed there)",
            )
            seconds = python.install(pack.name, requirements, kept, cwd=checkout)
        logger.info("custom nodes: requirements of %s installed in %.1f s", pack.name, seconds)

    def _stamp(self, pack: Pack) -> dict[str, object]:
        """What an installed pack must match to be kept: commit, clones, requirements, Python."""
        return {
            "commit": pack.commit,
            "clones": [clone.to_json() for clone in pack.clones],
            "requirements": None if pack.requirements is None else list(pack.requirements),
            "python": self.python,
        }

    @contextmanager
    def _installer_lock(self) -> Iterator[None]:
        """The flock on `custom_nodes/.nodekit-install.lock` (the folder made first if need be)."""
        with self._lock_file() as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                logger.info(
                    "custom nodes: waiting for another installer working in %s", self.custom_nodes_dir
                )
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _lock_file(self) -> BinaryIO:
        try:
            self.custom_nodes_dir.mkdir(exist_ok=True)
            return open(self.custom_nodes_dir / _LOCK_FILE, "a+b")
        except OSError as exc:
            raise PackInstallError(
                None, path=str(exc.filename or self.custom_nodes_dir), reason=_cause(exc)
            ) from exc


def _has_requirements(path: Path) -> bool:
    """Whether the file names anything; pip itself reads it (`-r`), in whatever encoding it has."""
    return any(line.split("#", 1)[0].strip() for line in read_requirements_text(path).splitlines())


def _unreadable(pack: Pack, target: Path, exc: GitError) -> InstallBlockedError:
    return InstallBlockedError(
        pack.name,
        path=str(target),
        reason=f"git cannot read the checkout there: {exc.reason}",
        advice="Do what git asks (or move the directory away)",
    )


def _cause(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _read_stamp(target: Path) -> object:
    try:
        return json.loads((target / ".git" / _STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
