"""Safe extraction of tar and zip archives: every member lands inside the target folder, or nothing does.

All members are checked before anything is written: no absolute path or drive letter, no `..`, no
backslash tricks, no device or FIFO, no link pointing outside, and no member reached through a link
(a link to `.` followed by `link/../x` would otherwise escape). Tar extraction then also runs through
Python's own `data` filter as a second guard. Used for `.tar` weight sources and for archives users
give the predictor.
"""

from __future__ import annotations

import posixpath
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from weightkit.errors import UnsafeArchiveError

__all__ = ["Member", "check_members", "member_path", "safe_extract_tar", "safe_extract_zip"]


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


def safe_extract_tar(archive: Path, dest: Path) -> list[Path]:
    """Extract the tar at `archive` into `dest`; returns the regular files written. Raises
    `UnsafeArchiveError` before writing anything if any member is unsafe."""
    with tarfile.open(archive) as tar:
        infos = tar.getmembers()
        check_members(str(archive), (_tar_member(info) for info in infos))
        dest.mkdir(parents=True, exist_ok=True)
        try:
            tar.extractall(dest, filter="data")
        except tarfile.FilterError as exc:  # the second guard; the checks above should have caught it
            raise UnsafeArchiveError(str(archive), exc.tarinfo.name, str(exc)) from exc
    return [dest / member_path(info.name) for info in infos if info.isreg()]


def safe_extract_zip(archive: Path, dest: Path) -> list[Path]:
    """Extract the zip at `archive` into `dest`; returns the regular files written. Raises
    `UnsafeArchiveError` before writing anything if any member is unsafe; zip symlinks are refused."""
    with zipfile.ZipFile(archive) as zf:
        infos = [info for info in zf.infolist() if not (info.is_dir() and _is_root(info.filename))]
        found = [_zip_member(info) for info in infos]
        for member in found:
            if member.kind == "symlink":
                raise UnsafeArchiveError(
                    str(archive), member.name, "is a symbolic link (not extracted from zip)"
                )
        members = check_members(str(archive), found)
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
