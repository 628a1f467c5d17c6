"""The minimum-rate rule: a stream must deliver at least so many bytes in every window of time.

A stall timeout catches a connection that sends nothing; it never catches one that sends a byte a
second. This rule does: the bytes received in each window of `window` seconds, counted from the first
read, must reach `bytes_per_second * window`. A pure value, fed `(bytes, monotonic time)` by whoever
reads the stream (the weights downloader, and URL inputs of predictions), so it is tested without a
clock or a socket:

    watch = RateFloor(bytes_per_second=32 << 10, window=30.0).watch(started=time.monotonic())
    watch = watch.fed(n, time.monotonic())  # after every read
    if watch.slow:  # the window that just ended fell short: replace the connection
        ...
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["RateFloor", "RateWatch"]


@dataclass(frozen=True)
class RateFloor:
    """At least `bytes_per_second` over each `window` seconds; `bytes_per_second == 0` turns it off."""

    bytes_per_second: float
    window: float

    @property
    def enabled(self) -> bool:
        return self.bytes_per_second > 0 and self.window > 0

    def watch(self, *, started: float) -> RateWatch:
        """A watch over one stream whose first window opens at `started` (monotonic seconds)."""
        return RateWatch(floor=self, since=started)

    def describe(self) -> str:
        return f"{self.bytes_per_second / 1000:.0f} kB/s over {self.window:g} s"


@dataclass(frozen=True)
class RateWatch:
    """Bytes `seen` since the current window opened at `since`; `slow` once a whole window fell short.

    A window closes at the first feed at or after its end: a read blocked past the end still counts
    the bytes it brought toward the window it ends."""

    floor: RateFloor
    since: float
    seen: int = 0
    slow: bool = False

    def fed(self, count: int, now: float) -> RateWatch:
        """This watch after `count` more bytes arrived at `now`."""
        seen = self.seen + count
        elapsed = now - self.since
        if not self.floor.enabled or elapsed < self.floor.window:
            return replace(self, seen=seen)
        if seen < self.floor.bytes_per_second * elapsed:
            return replace(self, seen=seen, slow=True)
        return replace(self, since=now, seen=0)
