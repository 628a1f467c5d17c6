"""Byte counts as people read them."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["format_bytes", "format_total"]

_UNITS = ("kB", "MB", "GB", "TB")


def format_bytes(size: int | None) -> str:
    """`23.8 GB`, `394 MB`, `3.4 kB`, `712 B`: decimal units, as model hubs show sizes; `size unknown`
    for a weight whose size only its host states."""
    if size is None:
        return "size unknown"
    if size < 1000:
        return f"{size} B"
    value, unit = size / 1000, 0
    while value >= 999.5 and unit < len(_UNITS) - 1:
        value, unit = value / 1000, unit + 1
    return f"{value:.1f} {_UNITS[unit]}" if value < 99.95 else f"{value:.0f} {_UNITS[unit]}"


def format_total(sizes: Iterable[int | None]) -> str:
    """The sum of the known sizes, saying how many more are of a size only their host states."""
    sizes = list(sizes)
    unknown = sum(size is None for size in sizes)
    known = [size for size in sizes if size is not None]
    if not unknown:
        return format_bytes(sum(known))
    of_unknown = f"{unknown} of unknown size"
    return f"{format_bytes(sum(known))} + {of_unknown}" if known else of_unknown
