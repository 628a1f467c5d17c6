"""Hash once, then only stat: records of files whose sha256 was checked, keyed by path, size and mtime.

A record says "this path, at this size and modification time, hashed to this sha256". While the file's
size and mtime are unchanged the record stands and the file is never read again; any change (a rewrite,
a truncation, a `touch`) invalidates it and the next verification re-hashes. Records live under the
weights folder in `.weightkit/verified/`, one small JSON file each, written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

__all__ = ["HASH_BLOCK", "VerifiedRecords", "sha256_file"]

HASH_BLOCK = 1 << 20


def sha256_file(path: Path | str, *, block: int = HASH_BLOCK) -> str:
    """The file's sha256 as 64 lowercase hex characters, read in `block`-sized pieces."""
    digest = hashlib.sha256()
    buffer = bytearray(block)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while n := handle.readinto(buffer):
            digest.update(view[:n])
    return digest.hexdigest()


class VerifiedRecords:
    """The set of (path, size, mtime) → sha256 facts established by hashing."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def _record_path(self, path: Path) -> Path:
        return self._record_file(str(Path(path).absolute()))

    def _record_file(self, absolute: str) -> Path:
        key = hashlib.sha1(absolute.encode(), usedforsecurity=False).hexdigest()
        return self.root / f"{key}.json"

    def lookup(self, path: Path | str, stat: os.stat_result | None = None) -> str | None:
        """The recorded sha256 if `path` is unchanged since it was hashed, else None."""
        path = Path(path)
        absolute = str(path.absolute())
        try:
            stat = stat or path.stat()
            data = json.loads(self._record_file(absolute).read_bytes())
        except (OSError, ValueError):
            return None
        if (
            data.get("path") == absolute
            and data.get("size") == stat.st_size
            and data.get("mtime_ns") == stat.st_mtime_ns
        ):
            return data.get("sha256")
        return None

    def record(self, path: Path | str, sha256: str, stat: os.stat_result | None = None) -> None:
        """Remember that `path`, as it is now (or as `stat` saw it), hashes to `sha256`."""
        path = Path(path)
        stat = stat or path.stat()
        body = {
            "path": str(path.absolute()),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "sha256": sha256,
        }
        target = self._record_path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(body), encoding="utf-8")
        os.replace(temporary, target)

    def forget(self, path: Path | str) -> None:
        self._record_path(Path(path)).unlink(missing_ok=True)

    def sha256(self, path: Path | str) -> str:
        """The file's sha256: from its record while unchanged, otherwise hashed now and recorded."""
        path = Path(path)
        stat = path.stat()
        known = self.lookup(path, stat)
        if known is not None:
            return known
        digest = sha256_file(path)
        if path.stat().st_mtime_ns == stat.st_mtime_ns:  # not rewritten while we read it
            self.record(path, digest, stat)
        return digest
