"""The `input_file` input, put into ComfyUI's input folder: a media file as `input.<ext>`, an archive
unpacked, safely and all or nothing.

- An image, video or audio file is copied in as `input.<ext>` (`input.png`, `input.mp4`...), the name
  cog-comfyui users write in `LoadImage`. Only that name is used: Cog hands the predictor a temporary
  file whose name is not the one the user chose, so it would be no use to a workflow. A workflow that
  needs several files, or its own names, takes a zip or tar instead.
- The type comes from the file name's extension when it is a known one, otherwise from the content
  (PNG, JPEG, WEBP, GIF, TIFF; MP4, MOV, WEBM, MKV, AVI; WAV, MP3, FLAC, OGG, M4A; zip; tar, plain or
  compressed).
- A zip or tar is unpacked with its folders, as named inside it. Every member is checked before anything
  is written: no absolute name, no `..`, no device or special file, no link that leads outside the
  archive (a symbolic link's target must stay below the link's own folder; a hard link must name
  another member) and nothing written through a link; no more than `archive_max_files` members and
  `archive_max_bytes` bytes in all. Zip symbolic links are refused (a zip stores them as files). One
  bad member refuses the whole archive. Members are unpacked into a staging folder inside the input
  folder, then moved into place, replacing what had the same name, so a refused or broken archive leaves
  nothing behind. tar members are extracted with Python's `data` filter as a second line of defence.
"""

from __future__ import annotations

import logging
import lzma
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from prediction.input_errors import InputArchiveError, InputFileError
from prediction.input_settings import InputSettings

__all__ = ["ARCHIVE", "MEDIA_EXTENSIONS", "archive_member_path", "place_input_file", "sniff_type"]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".webm", ".mkv", ".avi", ".m4v"})
AUDIO_EXTENSIONS = frozenset({".wav", ".mp3", ".flac", ".ogg", ".m4a", ".opus"})
MEDIA_EXTENSIONS = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS | AUDIO_EXTENSIONS
ARCHIVE = frozenset({".zip", ".tar"})

_SNIFF_BYTES = 64


def place_input_file(path: Path, input_dir: Path, *, settings: InputSettings) -> list[str]:
    """Put `path` into `input_dir`; the names placed there (files, relative to `input_dir`), sorted.

    Raises `InputFileError` for a file of no known type, `InputArchiveError` for an archive that is
    refused (unsafe member, over a limit, damaged), with nothing left in `input_dir`.
    """
    path = Path(path)
    kind = _extension(path.name)
    if kind not in MEDIA_EXTENSIONS:
        kind = sniff_type(path)
    if kind is None:
        raise InputFileError(str(path), "its type is not one this predictor can use")
    input_dir.mkdir(parents=True, exist_ok=True)
    if kind in ARCHIVE:
        placed = _unpack(path, kind, input_dir, settings)
        log.info("Unpacked %s into %s: %d files", path.name, input_dir, len(placed))
        return placed
    name = f"input{kind}"
    handle, temporary = tempfile.mkstemp(dir=input_dir, prefix=".input-", suffix=".part")
    os.close(handle)
    try:
        shutil.copyfile(path, temporary)
        os.chmod(temporary, 0o644)
        os.replace(temporary, input_dir / name)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    log.info("Copied %s into %s as %s", path.name, input_dir, name)
    return [name]


def _extension(name: str) -> str:
    lower = name.lower()
    if lower.endswith((".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
        return ".tar"
    return os.path.splitext(lower)[1]


def sniff_type(path: Path) -> str | None:
    """What the content of `path` is, as an extension (`.png`, `.mp4`, `.zip`, `.tar`...), or None."""
    with open(path, "rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    kind = _sniff_head(head)
    if kind is None and tarfile.is_tarfile(path):
        kind = ".tar"
    return kind


def _sniff_head(head: bytes) -> str | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if head.startswith(b"\xff\xd8\xff"):
        return ".jpg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return ".gif"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return ".tiff"
    if head.startswith(b"RIFF"):
        return {b"WEBP": ".webp", b"WAVE": ".wav", b"AVI ": ".avi"}.get(head[8:12])
    if head[4:8] == b"ftyp":
        return {b"qt  ": ".mov", b"M4A ": ".m4a"}.get(head[8:12], ".mp4")
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: Matroska, or WebM when its doctype says so
        return ".webm" if b"webm" in head else ".mkv"
    if head.startswith(b"fLaC"):
        return ".flac"
    if head.startswith(b"OggS"):
        return ".ogg"
    if head.startswith((b"ID3", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2")):
        return ".mp3"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return ".zip"
    return None


def archive_member_path(name: str) -> PurePosixPath | None:
    """The relative path a member name stands for (`./a/b` → `a/b`, `\\` read as `/`), None for the
    archive's root itself; raises `ValueError` saying why for an absolute name or one with `..`."""
    if "\x00" in name:
        raise ValueError("has a NUL character in its name")
    text = name.replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":" and text[0].isalpha()):
        raise ValueError("has an absolute name")
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValueError("has '..' in its name, which would leave the input folder")
    return PurePosixPath(*parts) if parts else None


def _unpack(archive: Path, kind: str, input_dir: Path, settings: InputSettings) -> list[str]:
    staging = Path(tempfile.mkdtemp(dir=input_dir, prefix=".unpack-"))
    try:
        if kind == ".zip":
            _unpack_zip(archive, staging, settings)
        else:
            _unpack_tar(archive, staging, settings)
        placed = sorted(
            str(Path(root, file).relative_to(staging))
            for root, _, files in os.walk(staging)
            for file in files
        )
        for entry in sorted(os.listdir(staging)):
            target = input_dir / entry
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.is_symlink() or target.exists():
                target.unlink()
            os.replace(staging / entry, target)
        return placed
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_limits(archive: Path, files: int, size: int, settings: InputSettings) -> None:
    if files > settings.archive_max_files:
        raise InputArchiveError(
            archive.name,
            f"it has more than {settings.archive_max_files:,} members, the limit set by "
            "INPUT_ARCHIVE_MAX_FILES",
        )
    if size > settings.archive_max_bytes:
        raise InputArchiveError(
            archive.name,
            f"it unpacks to more than {settings.archive_max_bytes:,} bytes, the limit set by "
            "INPUT_ARCHIVE_MAX_BYTES",
        )


def _through_link(path: PurePosixPath, links: set[PurePosixPath]) -> bool:
    return any(parent in links for parent in path.parents)


def _unpack_zip(archive: Path, staging: Path, settings: InputSettings) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            _check_limits(archive, len(members), sum(m.file_size for m in members), settings)
            planned = [(member, _check_zip_member(archive, member)) for member in members]
            for member, relative in planned:
                if relative is None:
                    continue
                target = staging / relative
                try:
                    if member.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(member) as source, open(target, "wb") as out:
                        shutil.copyfileobj(source, out, 1 << 20)
                except (OSError, EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile) as exc:
                    raise InputArchiveError(
                        archive.name, f"could not be unpacked ({exc})", member=member.filename
                    ) from exc
    except (zipfile.BadZipFile, EOFError, NotImplementedError) as exc:
        raise InputArchiveError(archive.name, f"it is not a readable zip archive ({exc})") from exc


def _check_zip_member(archive: Path, member: zipfile.ZipInfo) -> PurePosixPath | None:
    try:
        relative = archive_member_path(member.filename)
    except ValueError as exc:
        raise InputArchiveError(archive.name, str(exc), member=member.filename) from None
    mode = member.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise InputArchiveError(
            archive.name, "is a symbolic link; put the file itself in the archive", member=member.filename
        )
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise InputArchiveError(archive.name, "is a device or special file", member=member.filename)
    if member.flag_bits & 0x1:
        raise InputArchiveError(archive.name, "is encrypted", member=member.filename)
    return relative


def _unpack_tar(archive: Path, staging: Path, settings: InputSettings) -> None:
    try:
        with tarfile.open(archive, "r:*") as tf:
            members = _checked_tar_members(archive, tf, settings)
            try:
                tf.extractall(staging, members=members, filter="data")
            except tarfile.FilterError as exc:
                raise InputArchiveError(archive.name, str(exc), member=exc.tarinfo.name) from exc
            except (OSError, zlib.error, lzma.LZMAError) as exc:
                raise InputArchiveError(archive.name, f"could not be unpacked ({exc})") from exc
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise InputArchiveError(archive.name, f"it is not a readable tar archive ({exc})") from exc


def _checked_tar_members(
    archive: Path, tf: Iterable[tarfile.TarInfo], settings: InputSettings
) -> list[tarfile.TarInfo]:
    """Every member, once all are known to be safe; the limits are checked while reading headers."""
    members: list[tarfile.TarInfo] = []
    links: set[PurePosixPath] = set()
    seen: set[PurePosixPath] = set()
    size = 0
    for member in tf:
        members.append(member)
        size += member.size if member.isfile() else 0
        _check_limits(archive, len(members), size, settings)
        problem = _tar_member_problem(member, links, seen)
        if problem:
            raise InputArchiveError(archive.name, problem, member=member.name)
    return members


def _tar_member_problem(
    member: tarfile.TarInfo, links: set[PurePosixPath], seen: set[PurePosixPath]
) -> str | None:
    """Why a tar member is unsafe, given the symbolic links and members before it; None if it is safe."""
    try:
        path = archive_member_path(member.name)
    except ValueError as exc:
        return str(exc)
    if path is None:
        return None if member.isdir() else "has an empty name"
    if _through_link(path, links):
        return "would be written through a symbolic link"
    if member.ischr() or member.isblk():
        return "is a device file"
    if member.isfifo():
        return "is a named pipe (FIFO)"
    if member.issym():
        target = member.linkname.replace("\\", "/")
        if target.startswith("/"):
            return f"is a symbolic link to an absolute path ({member.linkname})"
        if ".." in target.split("/"):
            return f"is a symbolic link going up with '..' ({member.linkname}), which could leave the archive"
        links.add(path)
    elif member.islnk():
        try:
            target_path = archive_member_path(member.linkname)
        except ValueError:
            target_path = None
        if target_path is None or target_path not in seen or _through_link(target_path, links):
            return f"is a hard link to {member.linkname!r}, which is not a file in the archive"
    elif not (member.isfile() or member.isdir()):
        return "is a special file"
    seen.add(path)
    return None
