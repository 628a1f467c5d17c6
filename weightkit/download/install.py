"""Checking what arrived and placing it: the wrong bytes as a `Mismatch`, a `.tar` source unpacked.

A `.tar` source (Replicate's weights CDN) is unpacked beside the destination with `safe_extract_tar`;
the member named like the weight (or the only file) is verified and renamed into place, the rest
removed. Unpacking and hashing look at the download's stop between blocks, so a cancel ends them at
once; the downloaded tar is kept then, for the next run to unpack without fetching it again.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

from weightkit.download.archive import ArchiveLimits, member_path, safe_extract_tar
from weightkit.download.control import Cancelled, Stop, Stopped
from weightkit.download.hasher import sha256_path
from weightkit.download.httperrors import SourceError
from weightkit.download.partfile import PartFile, fsync_dir
from weightkit.download.request import FetchRequest
from weightkit.download.verify import is_safetensors, mismatch, safetensors_problem
from weightkit.errors import ArchiveTooLargeError, UnsafeArchiveError

__all__ = ["Mismatch", "install_from_tar", "pick_member"]


class Mismatch(SourceError):
    """The bytes arrived but are not the file asked for."""

    def __init__(self, reason: str, *, size: int, sha256: str | None) -> None:
        super().__init__(reason)
        self.size = size
        self.sha256 = sha256


def install_from_tar(
    request: FetchRequest, part: PartFile, limits: ArchiveLimits, *, stop: Stop
) -> tuple[int, str, os.stat_result]:
    """Unpack the downloaded tar beside the destination (within `limits`), check the weight in it, move
    it into place; its size, sha256 and stat. Raises `SourceError` for a bad or oversized archive,
    `Mismatch` for a wrong weight, `DiskSpaceError`; the part and the unpacked files are removed
    either way, except on `Cancelled` (`stop` set, looked at between blocks), which keeps the part."""
    dest = request.dest
    staging = dest.with_name(f"{dest.name}.{part.tag}.extract")
    part.close()
    cancelled = False
    try:
        return _unpack_and_place(request, part, staging, limits, stop)
    except Stopped:
        cancelled = True
        raise Cancelled(request.label) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not cancelled:
            part.discard()


def _unpack_and_place(
    request: FetchRequest, part: PartFile, staging: Path, limits: ArchiveLimits, stop: Stop
) -> tuple[int, str, os.stat_result]:
    dest = request.dest
    try:
        files = safe_extract_tar(part.path, staging, limits=limits, stop=stop)
    except (UnsafeArchiveError, ArchiveTooLargeError, tarfile.TarError) as exc:
        raise SourceError(f"bad archive: {exc}") from exc
    member = pick_member(files, staging, request)
    if member is None:
        raise SourceError(f"the archive holds no file named {request.name or dest.name}")
    size = member.stat().st_size
    digest = sha256_path(member, stop)
    problem = mismatch(expected_size=request.size, size=size, expected_sha256=request.sha256, sha256=digest)
    fd = os.open(member, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if problem is None and is_safetensors(dest.name):
            problem = safetensors_problem(fd, size)
        if problem is not None:
            raise Mismatch(problem, size=size, sha256=digest)
        os.fsync(fd)
        st = os.fstat(fd)
    finally:
        os.close(fd)
    os.replace(member, dest)
    fsync_dir(dest.parent)
    return size, digest, st


def pick_member(files: list[Path], staging: Path, request: FetchRequest) -> Path | None:
    """The weight inside an unpacked archive: by its name (with or without folders), or the only file."""
    wanted = {request.dest.name}
    if request.name:
        wanted |= {member_path(request.name), request.name.rpartition("/")[2]}
    for path in files:
        relative = path.relative_to(staging).as_posix()
        if relative in wanted or path.name in wanted:
            return path
    unique = set(files)
    return files[0] if len(unique) == 1 else None
