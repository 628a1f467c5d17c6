"""What is installed in `custom_nodes/` against the lock: one state per pack, and one log line for setup.

A pack is `ok` (checked out at its lock commit), `missing`, `other-commit` (a checkout at another
commit: the lock moved, run the installer), `not-a-checkout` (a directory git does not know),
`unreadable` (it has a `.git` git refuses to read, with git's reason: dubious ownership, say), or
`import-failed` (installed, but ComfyUI reported that importing it failed, with ComfyUI's message:
usually a missing Python dependency). Directories in `custom_nodes/` the lock does not list are
reported as `unlisted`, since ComfyUI loads them too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from nodekit.gitrepo import GitError, head_commit
from nodekit.lock import Lock, Pack

__all__ = ["PackState", "log_status", "pack_states", "status_line", "unlisted_packs"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackState:
    """One pack of the lock as found in `custom_nodes/`."""

    pack: Pack
    path: Path
    commit: str | None  # what is checked out there, None when nothing (or no checkout) is
    present: bool
    import_error: str | None = None
    git_error: str | None = None  # why git would not read the checkout there

    @property
    def state(self) -> str:
        if not self.present:
            return "missing"
        if self.git_error is not None:
            return "unreadable"
        if self.commit is None:
            return "not-a-checkout"
        if self.commit != self.pack.commit:
            return "other-commit"
        return "import-failed" if self.import_error is not None else "ok"

    @property
    def ok(self) -> bool:
        return self.state == "ok"

    def describe(self) -> str:
        """`name 9d076a3 ok`, `name missing`, `name at 1234567 (lock 9d076a3)`, `... failed to import: ...`"""
        state = self.state
        if state == "ok":
            return f"{self.pack.name} {self.pack.commit[:7]} ok"
        if state == "other-commit":
            assert self.commit is not None
            return f"{self.pack.name} at {self.commit[:7]} (lock {self.pack.commit[:7]})"
        if state == "import-failed":
            return f"{self.pack.name} {self.pack.commit[:7]} failed to import: {self.import_error}"
        if state == "unreadable":
            return f"{self.pack.name} unreadable by git: {self.git_error}"
        return f"{self.pack.name} {state}"


def pack_states(
    packs: Iterable[Pack], custom_nodes_dir: Path, *, import_failures: Mapping[str, str] | None = None
) -> list[PackState]:
    """The state of each of `packs`; `import_failures` is `{pack directory name: ComfyUI's message}`."""
    failures = import_failures or {}
    states = []
    for pack in packs:
        path = Path(custom_nodes_dir) / pack.name
        commit, git_error = _commit_at(path)
        states.append(
            PackState(
                pack=pack,
                path=path,
                commit=commit,
                present=os.path.lexists(path),
                import_error=failures.get(pack.name),
                git_error=git_error,
            )
        )
    return states


def _commit_at(path: Path) -> tuple[str | None, str | None]:
    """(commit, None), or (None, git's reason) when git will not read the checkout."""
    try:
        return head_commit(path), None
    except GitError as exc:
        return None, exc.reason


def unlisted_packs(lock: Lock, custom_nodes_dir: Path) -> list[str]:
    """Packs in `custom_nodes/` that the lock does not list (ComfyUI loads them as well)."""
    try:
        entries = sorted(os.listdir(custom_nodes_dir))
    except OSError:
        return []
    listed = {pack.name for pack in lock.packs}
    return [
        entry
        for entry in entries
        if entry not in listed
        and not entry.startswith(".")
        and not entry.endswith(".disabled")
        and entry != "__pycache__"
        and (entry.endswith(".py") or (Path(custom_nodes_dir) / entry).is_dir())
    ]


def status_line(
    states: Iterable[PackState],
    unlisted: Iterable[str] = (),
    *,
    import_failures: Mapping[str, str] | None = None,
) -> str:
    """One line for a cold start's log: `custom nodes: 3 of 4 ok: a 9d076a3 ok; b missing; ...`; packs
    not in the lock are listed last, with ComfyUI's import error when it reported one."""
    states = list(states)
    good = sum(state.ok for state in states)
    parts = [state.describe() for state in states]
    failures = import_failures or {}
    extra = [
        f"{name} (failed to import: {failures[name]})" if name in failures else name for name in unlisted
    ]
    if extra:
        parts.append("unlisted: " + ", ".join(extra))
    return f"custom nodes: {good} of {len(states)} ok" + (": " + "; ".join(parts) if parts else "")


def log_status(
    lock: Lock,
    packs: Iterable[Pack],
    custom_nodes_dir: Path,
    *,
    import_failures: Mapping[str, str] | None = None,
) -> list[PackState]:
    """At setup: compare `packs` (the selection that should be installed) with `custom_nodes/` and log
    one line, as a warning when a pack is not ok; returns the states."""
    states = pack_states(packs, custom_nodes_dir, import_failures=import_failures)
    line = status_line(states, unlisted_packs(lock, custom_nodes_dir), import_failures=import_failures)
    logger.log(logging.INFO if all(state.ok for state in states) else logging.WARNING, "%s", line)
    return states
