"""Free-space checks, made before anything is written."""

from __future__ import annotations

import shutil
from pathlib import Path

from weightkit.errors import DiskSpaceError

__all__ = ["ensure_space", "free_bytes"]


def existing_ancestor(path: Path) -> Path:
    """`path` or its nearest parent that exists (a weights folder may not be created yet)."""
    path = path.absolute()
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the volume holding `path`."""
    return shutil.disk_usage(existing_ancestor(path)).free


def ensure_space(path: Path, *, needed: int, margin: int) -> None:
    """Raise `DiskSpaceError` (needed and free bytes) unless `needed` bytes fit with `margin` to spare."""
    needed = max(0, needed)
    if needed == 0:
        return
    free = free_bytes(path)
    if needed + margin > free:
        raise DiskSpaceError(str(path), needed=needed + margin, free=free, margin=margin)
