"""Stopping a download at once, and the connection budget its threads share.

A `Stop` ends every thread of a download together: setting it wakes every wait on it and runs what was
registered with `on_set`, which shuts the download's sockets down so that a blocked read returns now
rather than at the stall timeout. Stops nest: a batch's stop sets each file's, a file's each
transfer's, while a transfer that fails on its own stops only itself.

`Slots` is the connection budget shared by every file downloading at once. `Slots.take(stop)` waits
for a free slot (giving up when the stop is set) and returns a `Slot`, a context manager that gives it
back exactly once, whichever thread ends up holding it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import TypeVar

__all__ = ["POLL", "Cancelled", "Slot", "Slots", "Stop", "Stopped", "each_done", "interruptible"]

# The longest any wait of a download blocks without looking at its stop.
POLL = 0.05
# After a cancel, how long the caller waits for the download's threads to release its part files.
WIND_DOWN = 10.0

T = TypeVar("T")


class Cancelled(Exception):
    """The caller stopped the download; the part file and its state are kept for a resume."""


class Stopped(Exception):
    """Raised inside a download's threads once its `Stop` is set; never leaves the downloader."""


class Stop:
    """Set once, seen by every thread of one download (and of the downloads nested in it)."""

    def __init__(self, parent: Stop | None = None) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        if parent is not None:
            parent.on_set(self.set)

    def child(self) -> Stop:
        """A stop that is set with this one, but may also be set alone."""
        return Stop(self)

    def set(self) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True as soon as the stop is set."""
        return self._event.wait(seconds)

    def check(self) -> None:
        """Raise `Stopped` if the stop is set."""
        if self._event.is_set():
            raise Stopped

    def on_set(self, callback: Callable[[], None]) -> None:
        """Call `callback` when the stop is set (now, if it already is)."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return
        callback()


class Slot:
    """One connection of the budget; `release()` (or leaving `with`) gives it back, once."""

    def __init__(self, semaphore: threading.Semaphore) -> None:
        self._semaphore: threading.Semaphore | None = semaphore

    def release(self) -> None:
        semaphore, self._semaphore = self._semaphore, None
        if semaphore is not None:
            semaphore.release()

    def __enter__(self) -> Slot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Slots:
    """At most `count` connections open at once, across every file of a downloader."""

    def __init__(self, count: int) -> None:
        self._semaphore = threading.BoundedSemaphore(count)

    def take(self, stop: Stop) -> Slot:
        """Wait for a free slot; raises `Stopped` if `stop` is set meanwhile."""
        while not self._semaphore.acquire(timeout=POLL):
            stop.check()
        return Slot(self._semaphore)


def interruptible(wait_all: Callable[[], T], stop: Stop, futures: list[Future]) -> T:
    """`wait_all()` (which waits in short steps); if an exception interrupts it, set `stop`, give the
    download's threads a moment to release their part files, and raise it on."""
    try:
        return wait_all()
    except BaseException:
        stop.set()
        for future in futures:
            future.cancel()
        deadline = time.monotonic() + WIND_DOWN
        while time.monotonic() < deadline and not all(future.done() for future in futures):
            wait(futures, timeout=POLL)
        raise


def each_done(futures: Iterable[Future[T]]) -> list[Future[T]]:
    """The futures in the order they finish, waiting in short steps."""
    pending, finished = set(futures), list[Future[T]]()
    while pending:
        done, pending = wait(pending, timeout=POLL, return_when=FIRST_COMPLETED)
        finished.extend(done)
    return finished
