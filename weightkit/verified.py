"""Hash once, then only stat: records of files whose sha256 was checked, keyed by path, size and mtime.

A record says "this path, at this size and modification time, hashed to this sha256, which `source`
vouched for". While the file's size and mtime are unchanged the record stands and the file is never
read again; any change (a rewrite, a truncation, a `touch`) invalidates it and the next verification
re-hashes. Records live under the weights folder in `.weightkit/verified/`, one small JSON file each,
written atomically.

The source says whether anyone but us vouches for the hash: `manifest` (the bytes matched the
manifest's sha256), `huggingface` or `civitai` (they matched the sha256 the host stated for the file),
or `computed` (hashed with nothing to compare against: a fact about the bytes, not a verification). A
record written before sources were recorded reads as `computed`.

Recording is best-effort: a weights folder baked into an image or mounted read-only is a normal
layout, and a file in it that is present and correct must not fail for want of a place to write its
record. Then the record goes to a folder of this user's own in the temporary directory (one per
weights folder), and if that fails too, it is not kept and the file is hashed again next time.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import stat as stat_mode
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["COMPUTED", "HASH_BLOCK", "SOURCES", "Verified", "VerifiedRecords", "sha256_file"]

log = logging.getLogger(__name__)

HASH_BLOCK = 1 << 20
COMPUTED = "computed"
SOURCES = ("manifest", "huggingface", "civitai", COMPUTED)


@dataclass(frozen=True, slots=True)
class Verified:
    """A record's facts: the file's sha256 and who vouched for it (one of `SOURCES`)."""

    sha256: str
    source: str = COMPUTED

    @property
    def vouched(self) -> bool:
        """The hash was compared with one the manifest or the file's host stated, and matched."""
        return self.source != COMPUTED


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
    """The set of (path, size, mtime) → sha256 facts established by hashing.

    `fallback` is where records go when `root` cannot be written (default: a folder of this user's
    in the temporary directory, named after `root`)."""

    def __init__(self, root: Path | str, *, fallback: Path | str | None = None) -> None:
        self.root = Path(root)
        self._fallback = Path(fallback) if fallback is not None else None

    @functools.cached_property
    def fallback(self) -> Path:
        if self._fallback is None:
            key = hashlib.sha1(str(self.root.absolute()).encode(), usedforsecurity=False).hexdigest()
            return Path(tempfile.gettempdir()) / f"weightkit-verified-{os.getuid()}" / key[:16]
        return self._fallback

    def _record_files(self, path: Path) -> tuple[Path, Path]:
        """Where `path`'s record is kept: under `root`, else in the fallback."""
        key = hashlib.sha1(str(path.absolute()).encode(), usedforsecurity=False).hexdigest()
        return self.root / f"{key}.json", self.fallback / f"{key}.json"

    def lookup(self, path: Path | str, stat: os.stat_result | None = None) -> str | None:
        """The recorded sha256 if `path` is unchanged since it was hashed, else None."""
        found = self.lookup_record(path, stat)
        return found.sha256 if found is not None else None

    def lookup_record(self, path: Path | str, stat: os.stat_result | None = None) -> Verified | None:
        """The record of `path` (its sha256 and source) if the file is unchanged since, else None."""
        path = Path(path)
        absolute = str(path.absolute())
        try:
            stat = stat or path.stat()
        except OSError:
            return None
        main, fallback = self._record_files(path)
        for record in (main, fallback):
            if record is fallback and not _own_folder(fallback.parent):
                continue  # someone else's folder could hold forged records
            try:
                data = json.loads(record.read_bytes())
            except (OSError, ValueError):
                continue
            if (
                data.get("path") == absolute
                and data.get("size") == stat.st_size
                and data.get("mtime_ns") == stat.st_mtime_ns
                and isinstance(data.get("sha256"), str)
            ):
                source = data.get("source", COMPUTED)
                return Verified(data["sha256"], source if source in SOURCES else COMPUTED)
        return None

    def record(
        self, path: Path | str, sha256: str, stat: os.stat_result | None = None, *, source: str = COMPUTED
    ) -> None:
        """Remember that `path`, as it is now (or as `stat` saw it), hashes to `sha256`, as `source`
        vouched. Never fails for want of a writable place: see the module docstring."""
        if source not in SOURCES:
            raise ValueError(f"unknown hash source {source!r}; one of {', '.join(SOURCES)}")
        path = Path(path)
        stat = stat or path.stat()
        body = json.dumps(
            {
                "path": str(path.absolute()),
                "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns,
                "sha256": sha256,
                "source": source,
            }
        )
        main, fallback = self._record_files(path)
        try:
            _write(main, body)
            return
        except OSError as exc:
            problem = exc
        try:
            _make_own_folder(fallback.parent)
            _write(fallback, body)
            log.debug("Recorded the sha256 of %s in %s (%s)", path, fallback.parent, problem)
        except OSError as exc:
            log.warning(
                "Could not record the sha256 of %s (%s; %s): it is hashed again next time", path, problem, exc
            )

    def forget(self, path: Path | str) -> None:
        for record in self._record_files(Path(path)):
            try:
                record.unlink(missing_ok=True)
            except OSError as exc:
                log.debug("Could not remove the record %s: %s", record, exc)

    def sha256(self, path: Path | str) -> str:
        """The file's sha256: from its record while unchanged, otherwise hashed now and recorded (as
        `computed`: the caller compares it with what it expected and records the match)."""
        path = Path(path)
        stat = path.stat()
        known = self.lookup(path, stat)
        if known is not None:
            return known
        digest = sha256_file(path)
        if path.stat().st_mtime_ns == stat.st_mtime_ns:  # not rewritten while we read it
            self.record(path, digest, stat)
        return digest


def _write(target: Path, body: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(body, encoding="utf-8")
        os.replace(temporary, target)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise


def _make_own_folder(folder: Path) -> None:
    """Create `folder` (private to this user) and check it is ours: a shared temporary directory must
    not let another user plant records."""
    folder.parent.mkdir(mode=0o700, exist_ok=True)
    folder.mkdir(mode=0o700, exist_ok=True)
    if not _own_folder(folder):
        raise PermissionError(f"{folder} belongs to another user or is not a private folder")


def _own_folder(folder: Path) -> bool:
    try:
        for part in (folder.parent, folder):
            st = part.lstat()
            if not stat_mode.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
                return False
    except OSError:
        return False
    return True
