"""The `.part` file a download writes into, and the resume state beside it.

Each download writes its own `<name>.<tag>.part` (the tag names host, process and a random suffix), so
two writers never share a file even when a lock fails to exclude them. Its state, `<part>.json`, says
which byte ranges are on disk and which remote file they came from; it is rewritten whenever a chunk
completes and twice a second, which doubles as a heartbeat. A part whose owner is gone (dead process
on this host, or no heartbeat for `stale_after` seconds) is an orphan: the next download claims it by
renaming it to its own tag, an atomic step only one claimant can win, and fetches only what is missing.

Two lists of ranges are kept. `done` is what was written; it survives the death of the process (the
page cache keeps the bytes) but not of the machine, so it is trusted only under the same kernel boot
id. `durable` is what an `fdatasync` made safe, every few seconds; it is what a resume trusts after a
reboot or on another machine (a network filesystem client loses unflushed writes with its host).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import json
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from weightkit.download.space import ensure_space

__all__ = ["PartFile", "ResumeState", "new_tag"]

log = logging.getLogger(__name__)

_TAG = r"[A-Za-z0-9_]+-\d+-[0-9a-f]{6}"
_SYNC_FILE_RANGE_WRITE = 2


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
    return f"{_host_tag()}-{os.getpid()}-{secrets.token_hex(3)}"


def _host_tag() -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname())[:40] or "host"


class PartFile:
    """One download's part file and state. Creates nothing until `open()`."""

    def __init__(
        self,
        dest: Path,
        tag: str,
        state: ResumeState | None = None,
        durable: tuple[tuple[int, int], ...] = (),
    ) -> None:
        self.dest = dest
        self.tag = tag
        self.path = dest.with_name(f"{dest.name}.{tag}.part")
        self.state_path = self.path.with_name(self.path.name + ".json")
        self.state = state  # what is on disk: from a claimed orphan, then from each checkpoint
        self.fd: int | None = None
        self._durable = durable

    @classmethod
    def claim(cls, dest: Path, *, tag: str, stale_after: float) -> PartFile:
        """A part file for `dest`: the orphan with the most bytes on disk, renamed to `tag`, or a new one.
        Other orphans of `dest` are removed."""
        fresh = cls(dest, tag)
        orphans = _orphans(dest, stale_after)
        orphans.sort(key=lambda found: found[1].done_bytes, reverse=True)
        claimed: PartFile | None = None
        for state_path, state, durable in orphans:
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
                claimed = cls(dest, tag, state=state, durable=durable)
                claimed.checkpoint(state)  # ours now: no one else may take it
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

    def sync(self, written: tuple[tuple[int, int], ...]) -> None:
        """`fdatasync`, after which the ranges `written` (taken before the call) survive a crash; the
        next checkpoint records them as durable."""
        if self.fd is not None:
            os.fdatasync(self.fd)
            self._durable = written

    def checkpoint(self, state: ResumeState, *, active: bool = True) -> None:
        """Record which ranges are written (and which of them are durable), atomically."""
        body = {
            "version": 2,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "boot_id": _boot_id(),
            "active": active,
            "url": state.url,
            "size": state.size,
            "etag": state.etag,
            "last_modified": state.last_modified,
            "done": [list(r) for r in state.done],
            "durable": [list(r) for r in self._durable],
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

    def start_writeback(self, start: int, end: int) -> None:
        """Start writing bytes `start`..`end` to disk now, without waiting, so the final fsync has
        little left to do and the disk works while the network does (`sync_file_range`, Linux)."""
        if self.fd is not None and end > start:
            _start_writeback(self.fd, start, end - start)

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


@functools.cache
def _libc(name: str, *argtypes: type) -> Callable[..., int] | None:
    """A Linux system call the os module lacks, from the C library; None where there is none."""
    try:
        function = getattr(ctypes.CDLL(None, use_errno=True), name)
    except (OSError, AttributeError):
        return None
    function.argtypes = argtypes
    function.restype = ctypes.c_int
    return function


def _start_writeback(fd: int, offset: int, length: int) -> None:
    function = _libc("sync_file_range", ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    if function is not None:
        function(fd, offset, length, _SYNC_FILE_RANGE_WRITE)  # advisory: a failure only costs speed


def _preallocate(fd: int, size: int) -> None:
    """Reserve the whole file now, so a full disk fails here and not at 90 %. Linux `fallocate` itself:
    glibc's `posix_fallocate` emulates it where a filesystem cannot (NFSv3) by writing every block.
    Where reserving is unsupported, a sparse file of the right length."""
    function = _libc("fallocate", ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
    if function is not None:
        if function(fd, 0, 0, size) == 0:
            return
        error = ctypes.get_errno()
        if error not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise OSError(error, os.strerror(error))
    os.ftruncate(fd, size)


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


Ranges = tuple[tuple[int, int], ...]


def _orphans(dest: Path, stale_after: float) -> list[tuple[Path, ResumeState, Ranges]]:
    """State files of `dest`'s part files whose owners are gone, with the ranges to trust (see the
    module docstring) and the durable ones. Leftovers of dead owners that cannot be resumed (a part
    without state, a half-written state) are removed."""
    pattern = re.compile(re.escape(dest.name) + rf"\.({_TAG})\.part(\.json|\.json\.tmp)?")
    groups: dict[str, dict[str, Path]] = {}
    try:
        names = os.listdir(dest.parent)
    except FileNotFoundError:
        return []
    for name in names:
        match = pattern.fullmatch(name)
        if match:
            groups.setdefault(match.group(1), {})[match.group(2) or ""] = dest.parent / name
    found: list[tuple[Path, ResumeState, Ranges]] = []
    now = time.time()
    for tag, files in groups.items():
        age = now - max(_mtime(path) for path in files.values())
        state_path = files.get(".json")
        data: dict = {}
        try:
            if state_path is None:
                raise FileNotFoundError
            data = json.loads(state_path.read_text(encoding="utf-8"))
            durable = tuple((int(s), int(e)) for s, e in data["durable"])
            same_boot = data.get("boot_id") is not None and data.get("boot_id") == _boot_id()
            state = ResumeState(
                url=str(data["url"]),
                size=data["size"],
                etag=data.get("etag"),
                last_modified=data.get("last_modified"),
                done=tuple((int(s), int(e)) for s, e in data["done"]) if same_boot else durable,
            )
        except (OSError, ValueError, KeyError, TypeError):
            if not _tag_owner_alive(tag, age, stale_after):
                for path in files.values():
                    path.unlink(missing_ok=True)
            continue
        if _owner_alive(data, age, stale_after):
            continue
        if ".json.tmp" in files:
            files[".json.tmp"].unlink(missing_ok=True)
        found.append((state_path, state, durable))
    return found


def _tag_owner_alive(tag: str, age: float, stale_after: float) -> bool:
    """For files without a readable state: the owner named in the tag, judged like `_owner_alive`."""
    host, pid, _ = tag.rsplit("-", 2)
    if age > stale_after:
        return False
    return host != _host_tag() or _pid_alive(int(pid))


def _boot_id() -> str | None:
    """This kernel boot's id: bytes in the page cache survive a process, not a reboot."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


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
