"""Safe extraction of tar and zip archives: every member lands inside the target folder, or nothing does.

All members are checked before anything is written: no absolute path or drive letter, no `..`, no
backslash tricks, no device or FIFO, no link pointing outside, and no member reached through a link
(a link to `.` followed by `link/../x` would otherwise escape). Tar extraction then also runs through
Python's own `data` filter as a second guard. One set of limits (`ArchiveLimits`: members, bytes, free
space left) applies on every path, counted while members are read. Used for `.tar` weight sources, Cog's
`weights` archive and archives users give the predictor.
"""

from __future__ import annotations

import io
import posixpath
import shutil
import stat
import struct
import tarfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from weightkit.download.control import Stop
from weightkit.download.space import ensure_space
from weightkit.errors import ArchiveTooLargeError, UnsafeArchiveError

if TYPE_CHECKING:
    from weightkit.settings import DownloadSettings

__all__ = [
    "ArchiveLimits",
    "Member",
    "check_members",
    "member_path",
    "safe_extract_tar",
    "safe_extract_zip",
]


@dataclass(frozen=True)
class Member:
    """An archive entry as the checks see it: `kind` is file, dir, symlink, hardlink or special."""

    name: str
    kind: str
    link: str | None = None


def member_path(name: str) -> str:
    """The member's relative POSIX path, normalised; raises ValueError saying why it is unsafe."""
    if "\x00" in name:
        raise ValueError("has a NUL byte in its name")
    path = name.replace("\\", "/")
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        raise ValueError("has an absolute path")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValueError("has '..' in its path")
    if not parts:
        raise ValueError("has an empty name")
    return "/".join(parts)


def _is_root(name: str) -> bool:
    return all(part in ("", ".") for part in name.replace("\\", "/").split("/"))


def check_members(archive: str, members: Iterable[Member]) -> list[Member]:
    """The members with normalised names (the archive's root folder left out), or `UnsafeArchiveError`
    naming the first unsafe one."""
    checked: list[Member] = []
    links: set[str] = set()
    files: set[str] = set()
    for member in members:
        if member.kind == "dir" and _is_root(member.name):
            continue  # `./`, as `tar -C folder .` writes: the target folder itself
        try:
            path = member_path(member.name)
        except ValueError as exc:
            raise UnsafeArchiveError(archive, member.name, str(exc)) from None
        if member.kind == "special":
            raise UnsafeArchiveError(archive, member.name, "is a device, FIFO or other special file")
        if any(path == link or path.startswith(link + "/") for link in links):
            raise UnsafeArchiveError(archive, member.name, "is reached through a link in the archive")
        target = None
        if member.kind == "symlink":
            link = member.link or ""
            if link.startswith("/") or "\\" in link or (len(link) > 1 and link[1] == ":"):
                raise UnsafeArchiveError(archive, member.name, f"is a link to the absolute path {link!r}")
            target = posixpath.normpath(posixpath.join(posixpath.dirname(path), link))
            if target == ".." or target.startswith("../"):
                raise UnsafeArchiveError(archive, member.name, f"is a link pointing outside ({link!r})")
            links.add(path)
        elif member.kind == "hardlink":
            try:
                target = member_path(member.link or "")
            except ValueError:
                raise UnsafeArchiveError(
                    archive, member.name, f"is a hard link pointing outside ({member.link!r})"
                ) from None
            if target not in files:
                raise UnsafeArchiveError(
                    archive, member.name, "is a hard link to no earlier file in the archive"
                )
            links.add(path)
        elif member.kind == "file":
            files.add(path)
        checked.append(Member(path, member.kind, target))
    return checked


@dataclass(frozen=True, kw_only=True)
class ArchiveLimits:
    """How much one archive may unpack to, checked as its members are read, before anything is written.

    `members` and `bytes` (the sum of the files' sizes) bound an archive bomb; `keep_free` bytes must stay
    free on the target volume after it is unpacked. `members_setting` and `bytes_setting` name the
    variables that raise the limits, for the error message.
    """

    members: int
    bytes: int
    keep_free: int = 0
    members_setting: str = ""
    bytes_setting: str = ""

    @classmethod
    def for_weights(cls, settings: DownloadSettings) -> ArchiveLimits:
        """The limits of weight archives: `.tar` sources and Cog's `weights` tar."""
        return cls(
            members=settings.archive_max_files,
            bytes=settings.archive_max_bytes,
            keep_free=settings.min_free_bytes,
            members_setting="WEIGHTS_ARCHIVE_MAX_FILES",
            bytes_setting="WEIGHTS_ARCHIVE_MAX_BYTES",
        )

    def count(self, archive: Path, name: str, index: int, total_bytes: int) -> None:
        """Raise `ArchiveTooLargeError` when member number `index` (from 1) or the bytes so far are over."""
        if index > self.members:
            raise ArchiveTooLargeError(
                str(archive), name, limit=self.members, unit="members", setting=self.members_setting
            )
        if total_bytes > self.bytes:
            raise ArchiveTooLargeError(
                str(archive), name, limit=self.bytes, unit="bytes", setting=self.bytes_setting
            )


def safe_extract_tar(
    archive: Path, dest: Path, *, limits: ArchiveLimits, stop: Stop | None = None
) -> list[Path]:
    """Extract the tar at `archive` into `dest`; returns the regular files written.

    Members are read one at a time and counted against `limits`, so a bomb is refused after at most
    `limits.members` headers; every member is checked before anything is written. Raises
    `UnsafeArchiveError`, `ArchiveTooLargeError` or `DiskSpaceError`, with nothing written; `Stopped`
    within one read of `stop` being set (what was written stays in `dest`, for the caller to remove).
    """
    with open(archive, "rb") as raw, tarfile.open(fileobj=_Stoppable(raw, stop) if stop else raw) as tar:
        infos: list[tarfile.TarInfo] = []
        size = 0
        for index, info in enumerate(tar, start=1):
            size += info.size if info.isreg() else 0
            limits.count(archive, info.name, index, size)
            infos.append(info)
        check_members(str(archive), (_tar_member(info) for info in infos))
        _ensure_room(dest, size, limits)
        try:
            tar.extractall(dest, members=infos, filter="data")
        except tarfile.FilterError as exc:  # the second guard; the checks above should have caught it
            raise UnsafeArchiveError(str(archive), exc.tarinfo.name, str(exc)) from exc
    return [dest / member_path(info.name) for info in infos if info.isreg()]


def safe_extract_zip(archive: Path, dest: Path, *, limits: ArchiveLimits) -> list[Path]:
    """Extract the zip at `archive` into `dest`; returns the regular files written.

    The member count is read from the end-of-central-directory record before the directory itself is,
    so a zip of a million entries is refused without indexing them. Raises like `safe_extract_tar`; zip
    symbolic links are refused.
    """
    declared = _zip_entry_count(archive)
    if declared is not None:
        limits.count(archive, "(the archive's directory)", declared, 0)
    with zipfile.ZipFile(archive) as zf:
        infos = [info for info in zf.infolist() if not (info.is_dir() and _is_root(info.filename))]
        size = 0
        for index, info in enumerate(infos, start=1):
            size += info.file_size
            limits.count(archive, info.filename, index, size)
        found = [_zip_member(info) for info in infos]
        for member in found:
            if member.kind == "symlink":
                raise UnsafeArchiveError(
                    str(archive), member.name, "is a symbolic link (not extracted from zip)"
                )
        members = check_members(str(archive), found)
        _ensure_room(dest, size, limits)
        written: list[Path] = []
        for info, member in zip(infos, members, strict=True):
            target = dest / member.name
            if member.kind == "dir":
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as source, open(target, "wb") as sink:
                shutil.copyfileobj(source, sink, 1 << 20)
            written.append(target)
    return written


class _Stoppable:
    """The archive, read through a check of `stop` at every read: tarfile reads in blocks, so an
    extraction in progress ends within one block of a cancel."""

    def __init__(self, raw: BinaryIO, stop: Stop) -> None:
        self._raw = raw
        self._stop = stop
        self.name = raw.name

    def read(self, size: int = -1) -> bytes:
        self._stop.check()
        return self._raw.read(size)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def write(self, data: bytes) -> int:
        raise io.UnsupportedOperation("the archive is only read")

    def close(self) -> None:
        """The archive is closed by whoever opened it."""


def _ensure_room(dest: Path, size: int, limits: ArchiveLimits) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    ensure_space(dest, needed=size, margin=limits.keep_free)


_EOCD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"


def _zip_entry_count(archive: Path) -> int | None:
    """The entry count an archive's end-of-central-directory record declares (ZIP64 too), or None when
    there is no such record (zipfile then refuses the file itself)."""
    with open(archive, "rb") as handle:
        handle.seek(0, 2)
        end = handle.tell()
        start = max(0, end - (1 << 16) - 22)
        handle.seek(start)
        tail = handle.read()
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) < at + 22:
        return None
    count = struct.unpack_from("<H", tail, at + 10)[0]
    locator = at - 20
    if count == 0xFFFF and locator >= 0 and tail[locator : locator + 4] == _ZIP64_LOCATOR:
        record = struct.unpack_from("<Q", tail, locator + 8)[0]
        with open(archive, "rb") as handle:
            handle.seek(record + 32)
            (count,) = struct.unpack("<Q", handle.read(8))
    return int(count)


def _tar_member(info: tarfile.TarInfo) -> Member:
    if info.isreg():
        kind = "file"
    elif info.isdir():
        kind = "dir"
    elif info.issym():
        kind = "symlink"
    elif info.islnk():
        kind = "hardlink"
    else:
        kind = "special"
    return Member(info.name, kind, info.linkname or None)


def _zip_member(info: zipfile.ZipInfo) -> Member:
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return Member(info.filename, "symlink")
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        return Member(info.filename, "special")
    return Member(info.filename, "dir" if info.is_dir() else "file")
