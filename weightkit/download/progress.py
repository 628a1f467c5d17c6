"""Progress for people watching a cold start: log lines per file, or one bar on a terminal.

The downloader calls a `ProgressReporter` from its threads; both reporters here lock internally.
`progress_for(stream)` picks the bar when `stream` is a terminal (the command line) and log lines
otherwise (a container's log).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Protocol, TextIO

from weightkit.download.request import FetchResult, FetchSummary
from weightkit.units import format_bytes

__all__ = ["LogProgress", "ProgressReporter", "ProgressTicks", "TerminalProgress", "progress_for"]

log = logging.getLogger(__name__)


class ProgressReporter(Protocol):
    def started(self, name: str, total: int | None, resumed: int) -> None: ...

    def advanced(self, name: str, done: int, total: int | None) -> None: ...

    def finished(self, result: FetchResult) -> None: ...

    def failed(self, name: str, error: BaseException) -> None: ...

    def summarized(self, summary: FetchSummary) -> None: ...


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


@dataclass
class _Meter:
    """Speed is measured from this run's start, so bytes resumed from disk do not inflate it."""

    total: int | None
    base: int
    start: float
    done: int = 0
    logged_at: float = 0.0
    logged_step: int = 0

    def rate(self, now: float) -> float:
        elapsed = now - self.start
        return (self.done - self.base) / elapsed if elapsed > 0 else 0.0

    def describe(self, name: str, now: float) -> str:
        rate = self.rate(now)
        speed = f"{rate / 1e6:.0f} MB/s"
        if self.total:
            left = (self.total - self.done) / rate if rate > 0 else None
            eta = f", ETA {_duration(left)}" if left is not None else ""
            percent = 100 * self.done / self.total
            sizes = f"{format_bytes(self.done)} of {format_bytes(self.total)}"
            return f"{name}: {sizes} ({percent:.0f}%), {speed}{eta}"
        return f"{name}: {format_bytes(self.done)}, {speed}"


class LogProgress:
    """A log line per file every `interval` seconds or `step` percent, whichever comes first."""

    def __init__(
        self, *, interval: float = 5.0, step: int = 10, logger: logging.Logger | None = None
    ) -> None:
        self._interval = interval
        self._step = step
        self._log = logger or log
        self._meters: dict[str, _Meter] = {}
        self._lock = threading.Lock()

    def started(self, name: str, total: int | None, resumed: int) -> None:
        now = time.monotonic()
        with self._lock:
            self._meters[name] = _Meter(total=total, base=resumed, start=now, done=resumed, logged_at=now)

    def advanced(self, name: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        with self._lock:
            meter = self._meters.get(name)
            if meter is None or done >= (total or float("inf")):
                return
            meter.done, meter.total = done, total
            step = int(100 * done / total) // self._step if total else 0
            if now - meter.logged_at < self._interval and step <= meter.logged_step:
                return
            meter.logged_at, meter.logged_step = now, step
            line = meter.describe(name, now)
        self._log.info("%s", line)

    def finished(self, result: FetchResult) -> None:
        with self._lock:
            self._meters.pop(result.name, None)
        self._log.info("%s", _finished_line(result))

    def failed(self, name: str, error: BaseException) -> None:
        with self._lock:
            self._meters.pop(name, None)
        self._log.error("%s failed: %s", name, error)

    def summarized(self, summary: FetchSummary) -> None:
        self._log.info("%s", _summary_line(summary))


class TerminalProgress:
    """One redrawn line on a terminal: a bar over every file in flight, bytes, speed and ETA; a line
    of its own for each finished file and for the summary."""

    def __init__(self, stream: TextIO, *, width: int = 30, redraw: float = 0.2) -> None:
        self._stream = stream
        self._width = width
        self._redraw = redraw
        self._meters: dict[str, _Meter] = {}
        self._drawn_at = 0.0
        self._lock = threading.Lock()

    def started(self, name: str, total: int | None, resumed: int) -> None:
        with self._lock:
            self._meters[name] = _Meter(total=total, base=resumed, start=time.monotonic(), done=resumed)
            self._draw(force=True)

    def advanced(self, name: str, done: int, total: int | None) -> None:
        with self._lock:
            meter = self._meters.get(name)
            if meter is not None:
                meter.done, meter.total = done, total
                self._draw()

    def finished(self, result: FetchResult) -> None:
        self._line_above(result.name, _finished_line(result))

    def failed(self, name: str, error: BaseException) -> None:
        self._line_above(name, f"{name} failed: {error}")

    def summarized(self, summary: FetchSummary) -> None:
        with self._lock:
            self._stream.write("\r\x1b[K" + _summary_line(summary) + "\n")
            self._stream.flush()

    def _line_above(self, name: str, text: str) -> None:
        with self._lock:
            self._meters.pop(name, None)
            self._stream.write("\r\x1b[K" + text + "\n")
            self._draw(force=True)

    def _draw(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not self._meters or (not force and now - self._drawn_at < self._redraw):
            if not self._meters:
                self._stream.flush()
            return
        self._drawn_at = now
        done = sum(m.done for m in self._meters.values())
        known = all(m.total for m in self._meters.values())
        total = sum(m.total or 0 for m in self._meters.values())
        rate = sum(m.rate(now) for m in self._meters.values())
        filled = int(self._width * done / total) if known and total else 0
        bar = "#" * filled + "." * (self._width - filled)
        size = f"{format_bytes(done)}/{format_bytes(total)}" if known else format_bytes(done)
        eta = f" ETA {_duration((total - done) / rate)}" if known and rate > 0 else ""
        files = len(self._meters)
        line = f"[{bar}] {size} {rate / 1e6:.0f} MB/s{eta} ({files} file{'s' if files != 1 else ''})"
        self._stream.write("\r\x1b[K" + line)
        self._stream.flush()


def progress_for(stream: TextIO, *, interval: float = 5.0) -> ProgressReporter:
    """A bar when `stream` is a terminal, log lines otherwise."""
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        return TerminalProgress(stream)
    return LogProgress(interval=interval)


def _finished_line(result: FetchResult) -> str:
    if result.present:
        return f"{result.name}: already present ({format_bytes(result.size)})"
    if result.waited:
        return f"{result.name}: fetched by another process ({format_bytes(result.size)})"
    resumed = f", resumed after {format_bytes(result.resumed)}" if result.resumed else ""
    check = f"sha256 {result.sha256[:12]}" if result.sha256 else "not hashed"
    return (
        f"{result.name}: {format_bytes(result.fetched)} in {result.seconds:.1f} s "
        f"({result.mb_per_s:.0f} MB/s){resumed}, {check}"
    )


def _summary_line(summary: FetchSummary) -> str:
    present = f", {summary.present} already present" if summary.present else ""
    failed = f", {len(summary.failed)} failed" if summary.failed else ""
    return (
        f"Weights: {summary.files} files, {format_bytes(summary.bytes)} downloaded in "
        f"{summary.seconds:.1f} s ({summary.mb_per_s:.0f} MB/s){present}{failed}"
    )


class ProgressTicks:
    """Turns a transfer's (done, total) ticks into started/advanced calls on the progress reporter,
    and counts the bytes every source brought, which the lock's heartbeat shows waiters."""

    def __init__(self, progress: ProgressReporter, name: str) -> None:
        self._progress = progress
        self._name = name
        self._started = False
        self._last = 0
        self._seen = 0

    def __call__(self, done: int, total: int | None) -> None:
        if not self._started:
            self._started = True
            self._progress.started(self._name, total, done)
        else:
            self._seen += max(0, done - self._last)
        self._last = done
        self._progress.advanced(self._name, done, total)

    def bytes_seen(self) -> int:
        return self._seen
