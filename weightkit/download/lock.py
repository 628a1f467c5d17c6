"""One downloader per file across processes and machines, to save bandwidth, never for correctness.

`flock` on a hidden `.<name>.lock` beside the file: the kernel drops it when its holder dies, so a dead
process never blocks anyone. While holding it, a thread touches the lock file every second; a waiter
that sees no touch for `stale_after` seconds stops waiting and downloads itself. On network filesystems
`flock` may silently succeed for everyone; then several processes download at once, each into its own
part file, each verifying before its atomic rename, so the result is still one correct file.
Lock files are never deleted: deleting one while another process waits on it would let two hold it.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import threading
import time
from pathlib import Path

__all__ = ["DownloadLock"]

log = logging.getLogger(__name__)

_POLL = 0.1
_BEAT = 1.0
_UNSUPPORTED = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)


class DownloadLock:
    """Context manager: waits for the lock on `dest`; `waited` says whether another process held it."""

    def __init__(self, dest: Path, *, stale_after: float) -> None:
        self.name = dest.name
        self.path = dest.with_name(f".{dest.name}.lock")
        self.stale_after = stale_after
        self.waited = False
        self.held = False
        self._fd: int | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def __enter__(self) -> DownloadLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> bool:
        """Hold the lock (True), or give up on a silent holder or a filesystem without locks (False)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._fd = fd
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
                self.held = True
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
                    "The process downloading %s shows no progress for %.0f s; downloading here too",
                    self.name,
                    self.stale_after,
                )
                return False
            time.sleep(_POLL)

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
            self._beat = None
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None
        self.held = False

    def _heartbeat(self) -> None:
        while not self._stop.wait(_BEAT):
            try:
                if self._fd is not None:
                    os.utime(self._fd)
            except OSError as exc:
                log.debug("Could not touch %s: %s", self.path, exc)
