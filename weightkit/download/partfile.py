"""The `.part` file a download writes into, and the resume state beside it.

Each download writes its own `<name>.<tag>.part` (the tag names host, process and a random suffix), so
two writers never share a file even when a lock fails to exclude them. Its state, `<part>.json`, says
which byte ranges are on disk and which remote file they came from; it is rewritten twice a second
while the download runs, which doubles as a heartbeat. A part whose owner is gone (dead process on
this host, or no heartbeat for `stale_after` seconds) is an orphan: the next download claims it by
renaming it to its own tag, an atomic step only one claimant can win, and fetches only what is missing.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from weightkit.download.space import ensure_space

__all__ = ["PartFile", "ResumeState", "new_tag"]

log = logging.getLogger(__name__)

_TAG = r"[A-Za-z0-9_]+-\d+-[0-9a-f]{6}"


@dataclass(frozen=True)
class ResumeState:
    """Where the written bytes came from: `url` (without query), the file's size and validators."""

    url: str
    size: int | None
    etag: str | None
    last_modified: str | None
    done: tuple[tuple[int, int], ...] = ()

    @property
    def done_bytes(self) -> int:
        return sum(end - start for start, end in self.done)


def new_tag() -> str:
    """A name part unique to this download: host, process id, random suffix."""
    host = re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname())[:40] or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


class PartFile:
    """One download's part file and state. Creates nothing until `open()`."""

    def __init__(self, dest: Path, tag: str, state: ResumeState | None = None) -> None:
        self.dest = dest
        self.tag = tag
        self.path = dest.with_name(f"{dest.name}.{tag}.part")
        self.state_path = self.path.with_name(self.path.name + ".json")
        self.state = state  # what is on disk: from a claimed orphan, then from each checkpoint
        self.fd: int | None = None

    @classmethod
    def claim(cls, dest: Path, *, tag: str, stale_after: float) -> PartFile:
        """A part file for `dest`: the orphan with the most bytes on disk, renamed to `tag`, or a new one.
        Other orphans of `dest` are removed."""
        fresh = cls(dest, tag)
        orphans = _orphans(dest, stale_after)
        orphans.sort(key=lambda found: found[1].done_bytes, reverse=True)
        claimed: PartFile | None = None
        for state_path, state in orphans:
            part_path = state_path.with_name(state_path.name[: -len(".json")])
            if claimed is None:
                try:
                    os.rename(state_path, fresh.state_path)
                except FileNotFoundError:
                    continue  # another process claimed it first
                try:
                    os.rename(part_path, fresh.path)
                except FileNotFoundError:
                    fresh.state_path.unlink(missing_ok=True)
                    continue
                claimed = cls(dest, tag, state=state)
                log.info("Resuming %s: %d bytes already on disk", dest.name, state.done_bytes)
            else:
                part_path.unlink(missing_ok=True)
                state_path.unlink(missing_ok=True)
        return claimed or fresh

    @staticmethod
    def reusable_bytes(dest: Path) -> int:
        """Disk already held by part files of `dest` (the most any one of them holds): a resume needs
        that much less free space."""
        pattern = re.compile(re.escape(dest.name) + rf"\.{_TAG}\.part")
        best = 0
        try:
            with os.scandir(dest.parent) as entries:
                for entry in entries:
                    if pattern.fullmatch(entry.name):
                        try:
                            best = max(best, entry.stat().st_blocks * 512)
                        except FileNotFoundError:
                            continue
        except FileNotFoundError:
            return 0
        return best

    def allocated(self) -> int:
        """Bytes of disk the part file already occupies (a resume needs only the rest)."""
        try:
            return self.path.stat().st_blocks * 512
        except FileNotFoundError:
            return 0

    def open(self, total: int | None, *, fresh: bool, margin: int) -> int:
        """Open (creating) the part file, emptied if `fresh`, and reserve `total` bytes. Checks free
        space first and raises `DiskSpaceError` with nothing written when it is short."""
        if total is not None:
            ensure_space(self.path.parent, needed=total - (0 if fresh else self.allocated()), margin=margin)
        self.close()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            if fresh:
                os.ftruncate(fd, 0)
            if total is not None and os.fstat(fd).st_size != total:
                _preallocate(fd, total)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return fd

    def checkpoint(self, state: ResumeState, *, active: bool = True) -> None:
        """Make the written bytes durable, then record them: the state never claims bytes a crash lost."""
        if self.fd is not None:
            os.fdatasync(self.fd)
        body = {
            "version": 1,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "active": active,
            "url": state.url,
            "size": state.size,
            "etag": state.etag,
            "last_modified": state.last_modified,
            "done": [list(r) for r in state.done],
        }
        temporary = self.state_path.with_name(self.state_path.name + ".tmp")
        temporary.write_text(json.dumps(body), encoding="utf-8")
        os.replace(temporary, self.state_path)
        self.state = state

    def release(self) -> None:
        """Mark the part as nobody's, so any process may resume it at once; closes the file."""
        self.close()
        if self.state is not None and self.state_path.exists():
            self.checkpoint(self.state, active=False)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def finish(self, dest: Path) -> os.stat_result:
        """fsync, rename onto `dest` atomically, fsync the folder; returns the final file's stat."""
        if self.fd is None:
            raise RuntimeError("finish() before open()")
        os.fsync(self.fd)
        stat = os.fstat(self.fd)
        self.close()
        os.replace(self.path, dest)
        fsync_dir(dest.parent)
        self.state_path.unlink(missing_ok=True)
        self.state = None
        return stat

    def discard(self) -> None:
        """Remove the part file and its state."""
        self.close()
        self.path.unlink(missing_ok=True)
        self.state_path.unlink(missing_ok=True)
        self.state = None


def _preallocate(fd: int, size: int) -> None:
    """Reserve the whole file now, so a full disk fails here and not at 90 %; a filesystem that cannot
    reserve gets a sparse file of the right length instead."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
        os.ftruncate(fd, size)


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _orphans(dest: Path, stale_after: float) -> list[tuple[Path, ResumeState]]:
    """State files of `dest`'s part files whose owners are gone; unreadable stale ones are removed."""
    pattern = re.compile(re.escape(dest.name) + rf"\.({_TAG})\.part\.json")
    found: list[tuple[Path, ResumeState]] = []
    try:
        names = os.listdir(dest.parent)
    except FileNotFoundError:
        return found
    now = time.time()
    for name in names:
        if not pattern.fullmatch(name):
            continue
        path = dest.parent / name
        try:
            age = now - path.stat().st_mtime
            data = json.loads(path.read_text(encoding="utf-8"))
            state = ResumeState(
                url=str(data["url"]),
                size=data["size"],
                etag=data.get("etag"),
                last_modified=data.get("last_modified"),
                done=tuple((int(s), int(e)) for s, e in data["done"]),
            )
        except FileNotFoundError:
            continue
        except (OSError, ValueError, KeyError, TypeError):
            if now - _mtime(path) > stale_after:
                path.unlink(missing_ok=True)
                path.with_name(name[: -len(".json")]).unlink(missing_ok=True)
            continue
        if _owner_alive(data, age, stale_after):
            continue
        found.append((path, state))
    return found


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()


def _owner_alive(data: dict, age: float, stale_after: float) -> bool:
    """A released part, a dead process on this host or a silent owner elsewhere: all mean orphan."""
    if not data.get("active", False) or age > stale_after:
        return False
    if data.get("host") != socket.gethostname():
        return True
    return _pid_alive(int(data.get("pid", 0)))


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed process not yet reaped by its parent still answers kill(0)
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rpartition(b")")[2].split()[0] != b"Z"
    except (OSError, IndexError):
        return True
