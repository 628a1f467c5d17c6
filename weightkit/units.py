"""Byte counts as people read them."""

from __future__ import annotations

__all__ = ["format_bytes"]

_UNITS = ("kB", "MB", "GB", "TB")


def format_bytes(size: int) -> str:
    """`23.8 GB`, `394 MB`, `3.4 kB`, `712 B`: decimal units, as model hubs show sizes."""
    if size < 1000:
        return f"{size} B"
    value, unit = size / 1000, 0
    while value >= 999.5 and unit < len(_UNITS) - 1:
        value, unit = value / 1000, unit + 1
    return f"{value:.1f} {_UNITS[unit]}" if value < 99.95 else f"{value:.0f} {_UNITS[unit]}"
