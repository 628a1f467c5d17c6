"""The `.part` file a download writes into, and the resume state beside it: the writing half.

Each download writes its own `<name>.<tag>.part` (the tag names host, process and a random suffix), so
two writers never share a file even when a lock fails to exclude them. Its state, `<part>.json`, says
which byte ranges are on disk and which remote file they came from; it is rewritten whenever a chunk
completes and at least twice a second, which doubles as a heartbeat. A part whose owner is gone
(`orphans.py`) is claimed by writing this download's state first and then renaming the part to its
tag, the one atomic step that decides between claimants, and only what is missing is fetched.

Two lists of ranges are kept. `done` is what was written; it survives the death of the process (the
page cache keeps the bytes) but not of the machine, so it is trusted only under the same kernel boot
id. `durable` is what an `fdatasync` made safe, every few seconds; it is what a resume trusts after a
reboot or on another machine (a network filesystem client loses unflushed writes with its host).

The part file owns its writes: positional (`write`, `splice`), one at a time per file (16 threads
`pwrite`-ing one file spent more CPU spinning on the inode lock than copying, perf:
`rwsem_spin_on_owner`), and, for a file of unknown size that could not be reserved up front, never
below `WEIGHTS_MIN_FREE_BYTES` of free space. It owns its flushing too: a flusher thread starts the
disk writing each finished range at once (`sync_file_range`) and `fdatasync`s every few seconds, so
the final fsync has little left and a crash loses little.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import logging
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from weightkit.download.flusher import Flusher
from weightkit.download.orphans import (
    TAG,
    Ranges,
    ResumeState,
    disown_tag,
    encode_state,
    host_tag,
    orphans,
    own_tag,
)
from weightkit.download.space import ensure_space, free_bytes
from weightkit.errors import DiskSpaceError

__all__ = ["PartFile", "ResumeState", "new_tag"]

log = logging.getLogger(__name__)

_SYNC_FILE_RANGE_WRITE = 2


def new_tag() -> str:
    """A name part unique to this download: host, process id, random suffix; this process's until the
    part file `end()`s."""
    tag = f"{host_tag()}-{os.getpid()}-{secrets.token_hex(3)}"
    own_tag(tag)
    return tag


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
        self._write_lock = threading.Lock()
        self._margin: int | None = None  # kept free while writing a file that could not be reserved
        self._flusher: Flusher | None = None

    @classmethod
    def claim(cls, dest: Path, *, tag: str, stale_after: float) -> PartFile:
        """A part file for `dest`: the orphan with the most bytes on disk, renamed to `tag`, or a new one.
        Other orphans of `dest` are removed. Of several claimants, the one whose rename of the part
        succeeds wins; the others find the orphan gone or owned by a live process."""
        fresh = cls(dest, tag)
        left = orphans(dest, stale_after)
        left.sort(key=lambda found: found[1].done_bytes, reverse=True)
        claimed: PartFile | None = None
        for state_path, state, durable in left:
            part_path = state_path.with_name(state_path.name[: -len(".json")])
            if claimed is None:
                claimed = cls._take(dest, tag, part_path, state, durable)
                state_path.unlink(missing_ok=True)  # the winner's (ours or not) or a part-less one
                if claimed is not None:
                    log.info("Resuming %s: %d bytes already on disk", dest.name, state.done_bytes)
            else:
                part_path.unlink(missing_ok=True)
                state_path.unlink(missing_ok=True)
        return claimed or fresh

    @classmethod
    def _take(
        cls, dest: Path, tag: str, part_path: Path, state: ResumeState, durable: Ranges
    ) -> PartFile | None:
        """Claim one orphan: our state first (a live owner's, so no one else takes it), then the one
        rename that decides, of the part itself; None if another claimant's rename came first."""
        claimed = cls(dest, tag, state=state, durable=durable)
        claimed.checkpoint(state)
        try:
            os.rename(part_path, claimed.path)
        except FileNotFoundError:
            claimed.state_path.unlink(missing_ok=True)
            claimed.state = None
            return None
        return claimed

    @staticmethod
    def reusable_bytes(dest: Path) -> int:
        """Disk already held by part files of `dest` (the most any one of them holds): a resume needs
        that much less free space."""
        pattern = re.compile(re.escape(dest.name) + rf"\.{TAG}\.part")
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
        """Open the part file, created empty if `fresh` (forgetting what an earlier owner made durable),
        else the one claimed, and reserve `total` bytes. Checks free space first and raises
        `DiskSpaceError` with nothing written when it is short. With `total` unknown, every write keeps
        `margin` bytes free instead. Raises `OSError` if a kept part is missing or shorter than its
        state says."""
        if total is not None:
            ensure_space(self.path.parent, needed=total - (0 if fresh else self.allocated()), margin=margin)
        self._margin = None if total is not None else margin
        self.close()
        if fresh:
            self._durable = ()
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        else:
            fd = self._open_kept()
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

    def _open_kept(self) -> int:
        """The claimed part, never a new empty one: zeros must not pass for the bytes its state lists.
        A part missing or shorter than that (taken over, truncated) is discarded."""
        on_disk = max((end for _, end in self.state.done), default=0) if self.state is not None else 0
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            found = "is gone"
        else:
            size = os.fstat(fd).st_size
            if size >= on_disk:
                return fd
            os.close(fd)
            found = f"has {size} bytes"
        self.discard()
        raise OSError(
            errno.EIO,
            f"the part file {self.path} {found}, but its resume state says {on_disk} bytes were written "
            "(another process took it over, or it was truncated); its state was removed, so running "
            "the download again starts it afresh",
        )

    @property
    def reserved(self) -> bool:
        """Whether the file's whole size was reserved when it was opened."""
        return self._margin is None

    def write(self, data: memoryview, pos: int) -> None:
        """Write `data` at byte `pos`; raises `DiskSpaceError` rather than eat into the free margin."""
        fd = self._open_fd()
        if self._margin is not None:
            self._keep_free(len(data))
        with self._write_lock, self._no_space_is_typed(len(data)):
            written = 0
            while written < len(data):
                written += os.pwrite(fd, data[written:], pos + written)

    def splice(self, pipe: int, count: int, pos: int) -> None:
        """Move `count` bytes from `pipe` to byte `pos`, without copying them through this process."""
        fd = self._open_fd()
        if self._margin is not None:
            self._keep_free(count)
        with self._write_lock, self._no_space_is_typed(count):
            while count:
                moved = os.splice(pipe, fd, count, offset_dst=pos)
                if moved <= 0:
                    raise OSError(errno.EIO, "the pipe ran dry while writing the part file")
                pos += moved
                count -= moved

    def start_flushing(self, written: Callable[[], Ranges]) -> None:
        """Start the flusher; `written()` says which ranges are written, for the durable record."""
        self._flusher = Flusher(self, written)
        self._flusher.start()

    def flush_range(self, start: int, end: int) -> None:
        """`start`..`end` is complete: have the disk write it now."""
        if self._flusher is not None:
            self._flusher.queue(start, end)

    def stop_flushing(self) -> None:
        """Stop the flusher; raises the `OSError` it hit, if any."""
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            flusher.finish()

    def flush_error(self) -> OSError | None:
        return self._flusher.error if self._flusher is not None else None

    def sync(self, written: tuple[tuple[int, int], ...]) -> None:
        """`fdatasync`, after which the ranges `written` (taken before the call) survive a crash; the
        next checkpoint records them as durable."""
        if self.fd is not None:
            os.fdatasync(self.fd)
            self._durable = written

    def checkpoint(self, state: ResumeState, *, active: bool = True) -> None:
        """Record which ranges are written (and which of them are durable), atomically."""
        temporary = self.state_path.with_name(self.state_path.name + ".tmp")
        temporary.write_text(encode_state(state, durable=self._durable, active=active), encoding="utf-8")
        os.replace(temporary, self.state_path)
        self.state = state

    def release(self) -> None:
        """Mark the part as nobody's, so any process may resume it at once; closes the file."""
        self.close()
        if self.state is not None and self.state_path.exists():
            self.checkpoint(self.state, active=False)

    def end(self) -> None:
        """This download is over: keep what arrived for a resume by any process (`release`), or, with
        no state to say what it is, remove the part; the tag is no longer this process's."""
        try:
            if self.state is not None:
                self.release()
            else:
                self.discard()
        finally:
            disown_tag(self.tag)

    def start_writeback(self, start: int, end: int) -> None:
        """Start writing bytes `start`..`end` to disk now, without waiting, so the final fsync has
        little left to do and the disk works while the network does (`sync_file_range`, Linux)."""
        if self.fd is not None and end > start:
            _start_writeback(self.fd, start, end - start)

    def _open_fd(self) -> int:
        if self.fd is None:
            raise RuntimeError("write before open()")
        return self.fd

    def _keep_free(self, count: int) -> None:
        assert self._margin is not None
        free = free_bytes(self.path.parent)
        if free - count < self._margin:
            folder, margin = str(self.path.parent), self._margin
            raise DiskSpaceError(folder, needed=count + margin, free=free, margin=margin)

    @contextlib.contextmanager
    def _no_space_is_typed(self, count: int) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            free = free_bytes(self.path.parent)
            raise DiskSpaceError(
                str(self.path.parent), needed=count + (self._margin or 0), free=free, margin=self._margin or 0
            ) from exc

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
        self._durable = ()


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
