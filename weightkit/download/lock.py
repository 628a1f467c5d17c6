"""One downloader per file across processes and machines, to save bandwidth, never for correctness.

`flock` on a hidden `.<name>.lock` beside the file: the kernel drops it when its holder dies, so a dead
process never blocks anyone. While holding it, a thread touches the lock file every second, but during
a transfer only when bytes arrived since the last touch: a waiter watches that, and after `stale_after`
seconds without a touch (a dead machine, or a live holder stuck on a slow source) it stops waiting and
downloads itself. On network filesystems `flock` may silently succeed for everyone; then several
processes download at once, each into its own part file, each verifying before its atomic rename, so
the result is still one correct file. Lock files are never deleted: deleting one while another
process waits on it would let two hold it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from weightkit.download.control import POLL, Cancelled, Stop

__all__ = ["DownloadLock"]

log = logging.getLogger(__name__)

_BEAT = 1.0
_UNSUPPORTED = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)


class DownloadLock:
    """Context manager: waits for the lock on `dest`; `waited` says whether another process held it.
    Raises `Cancelled` if `stop` is set while it waits."""

    def __init__(self, dest: Path, *, stale_after: float, stop: Stop | None = None) -> None:
        self.name = dest.name
        self.path = dest.with_name(f".{dest.name}.lock")
        self.stale_after = stale_after
        self.waited = False
        self._fd: int | None = None
        self._stop = stop or Stop()
        self._done = threading.Event()
        self._beat: threading.Thread | None = None
        self._progress: Callable[[], int] | None = None

    def __enter__(self) -> DownloadLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    @contextlib.contextmanager
    def expecting_progress(self, progress: Callable[[], int]) -> Iterator[None]:
        """While inside, the heartbeat shows only progress: a touch only when `progress()` grew."""
        self._progress = progress
        try:
            yield
        finally:
            self._progress = None

    def acquire(self) -> bool:
        """Hold the lock (True), or give up on a silent holder or a filesystem without locks (False).
        Raises `Cancelled` (or the `OSError` of the lock file) with the lock file closed again."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._fd = fd
        try:
            return self._wait(fd)
        except BaseException:
            self._fd = None
            os.close(fd)
            raise

    def _wait(self, fd: int) -> bool:
        """Try the lock in short steps, watching the holder's heartbeat and the stop."""
        last_mtime, last_change = None, time.monotonic()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pass
            except OSError as exc:
                if exc.errno not in _UNSUPPORTED:
                    raise
                log.debug("No file locks on %s (%s); downloading without one", self.path.parent, exc)
                return False
            else:
                os.utime(fd)
                self._beat = threading.Thread(target=self._heartbeat, name="weightkit-lock", daemon=True)
                self._beat.start()
                return True
            if not self.waited:
                log.info("Another process is downloading %s; waiting for it", self.name)
                self.waited = True
            mtime = os.fstat(fd).st_mtime_ns
            if mtime != last_mtime:
                last_mtime, last_change = mtime, time.monotonic()
            elif time.monotonic() - last_change > self.stale_after:
                log.warning(
                    "The process downloading %s brought no bytes for %.0f s; downloading here too",
                    self.name,
                    self.stale_after,
                )
                return False
            if self._stop.wait(POLL):
                raise Cancelled(self.name)

    def release(self) -> None:
        self._done.set()
        if self._beat is not None:
            self._beat.join()
            self._beat = None
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def _heartbeat(self) -> None:
        shown = None
        while not self._done.wait(_BEAT):
            progress = self._progress
            if progress is not None:
                now = progress()
                if now == shown:
                    continue
                shown = now
            else:
                shown = None
            try:
                if self._fd is not None:
                    os.utime(self._fd)
            except OSError as exc:
                log.debug("Could not touch %s: %s", self.path, exc)
