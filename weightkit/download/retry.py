"""Retry timing as pure functions: exponential backoff with jitter, and `Retry-After` parsing."""

from __future__ import annotations

import random
import time
from email.utils import parsedate_to_datetime

__all__ = ["backoff_delay", "parse_retry_after"]


def backoff_delay(failures: int, *, base: float, cap: float, rand: float | None = None) -> float:
    """Seconds to wait before retry number `failures` (1, 2, ...): `base * 2**(failures-1)` capped at
    `cap`, then "equal jitter" (between half and all of it) so many connections do not retry in step."""
    ceiling = min(cap, base * (2 ** max(0, failures - 1)))
    fraction = random.random() if rand is None else rand
    return ceiling / 2 + ceiling / 2 * fraction


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """A `Retry-After` header as seconds from now: delta-seconds or an HTTP date; None if absent or
    unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, when - (time.time() if now is None else now))
