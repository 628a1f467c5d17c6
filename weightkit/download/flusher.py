"""The part file's flusher: the thread that has the disk write each finished range at once and makes the
written ones durable every few seconds, so the final fsync has little left and a crash loses little."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from weightkit.download.orphans import Ranges

if TYPE_CHECKING:
    from weightkit.download.partfile import PartFile

__all__ = ["CHECKPOINT_SECONDS", "DURABLE_SECONDS", "Flusher"]

# How often the flusher wakes to start writeback when no range finished meanwhile.
CHECKPOINT_SECONDS = 0.5
# fdatasync this often while downloading: keeps the final fsync short and bounds what a crash loses;
# doing it at every checkpoint cost more CPU in writeback than the download (bench, docs/DOWNLOAD.md).
DURABLE_SECONDS = 5.0


class Flusher:
    """The thread that writes finished ranges back at once and makes the written ones durable."""

    def __init__(self, part: PartFile, written: Callable[[], Ranges]) -> None:
        self._part = part
        self._written = written
        self._pending: list[tuple[int, int]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._done = False
        self.error: OSError | None = None
        self._thread = threading.Thread(target=self._run, name="weightkit-flush", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def queue(self, start: int, end: int) -> None:
        with self._lock:
            self._pending.append((start, end))
        self._wake.set()

    def finish(self) -> None:
        self._done = True
        self._wake.set()
        self._thread.join()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        synced = time.monotonic()
        try:
            while not self._done:
                self._wake.wait(CHECKPOINT_SECONDS)
                self._wake.clear()
                with self._lock:
                    ranges, self._pending = self._pending, []
                for start, end in ranges:
                    self._part.start_writeback(start, end)
                if time.monotonic() - synced >= DURABLE_SECONDS:
                    self._part.sync(self._written())
                    synced = time.monotonic()
        except OSError as exc:
            self.error = exc
