"""How many connections one file uses, decided from the throughput it measures.

A ranged download starts with a few connections. When each carries less than `fast` bytes/s, the
server or CDN is likely capping every stream, and more streams mean more speed: it opens up to its
limit. If the next measurements show that did not raise throughput by `gain`, the link or the CPU was
the limit after all, so it goes back to the connections it had and stops trying; on an uncapped link
extra connections only cost CPU (`python -m bench download`: 1.2 GB/s with 2, 0.8 GB/s with 32).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ConnectionWidth"]

START_CONNECTIONS = 2
FAST_CONNECTION = 150e6
GAIN = 1.25


@dataclass
class _Trial:
    rate: float
    count: int
    windows: int = 0


class ConnectionWidth:
    """Feed `observe()` the throughput of each measuring window; follow `target`."""

    def __init__(self, *, limit: int, start: int = START_CONNECTIONS, fast: float = FAST_CONNECTION) -> None:
        self.limit = limit
        self.target = max(1, min(start, limit))
        self._fast = fast
        self._trial: _Trial | None = None
        self._settled = False

    def observe(self, rate: float, active: int) -> bool:
        """Take one window's bytes/s with `active` connections open; True when `target` changed."""
        if self._trial is not None:
            self._trial.windows += 1
            if self._trial.windows < 2:  # the first window after widening includes connecting
                return False
            trial, self._trial = self._trial, None
            if rate >= GAIN * trial.rate:
                return False
            self.target, self._settled = trial.count, True
            return True
        if self._settled or self.target >= self.limit or active < self.target or active == 0:
            return False
        if rate / active >= self._fast:
            return False
        self._trial = _Trial(rate=rate, count=active)
        self.target = self.limit
        return True
