"""The `input_file` input, put into ComfyUI's input folder: a media file as `input.<ext>`, an archive
unpacked, safely and all or nothing.

- An image, video or audio file is copied in as `input.<ext>` (`input.png`, `input.mp4`...), the name
  cog-comfyui users write in `LoadImage`. Only that name is used: Cog hands the predictor a temporary
  file whose name is not the one the user chose, so it would be no use to a workflow. A workflow that
  needs several files, or its own names, takes a zip or tar instead.
- The type comes from the file name's extension when it is a known one, otherwise from the content
  (PNG, JPEG, WEBP, GIF, TIFF, AVIF, HEIC; MP4, MOV, WEBM, MKV, AVI; WAV, MP3, FLAC, OGG, M4A; zip;
  tar, plain or compressed).
- A zip or tar is unpacked with its folders, as named inside it, by weightkit's safe extraction
  (`weightkit.download.archive`): every member is checked before anything is written (no absolute name,
  no `..`, no device or special file, no link leading outside, nothing written through a link, zip
  symbolic links refused), and one bad member refuses the whole archive; no more than
  `archive_max_files` members and `archive_max_bytes` bytes, counted as the members are read (archive
  bombs). Members are unpacked into a staging folder inside the input folder, then moved into place,
  replacing what had the same name, so a refused or broken archive leaves nothing behind.
"""

from __future__ import annotations

import logging
import lzma
import os
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path

from prediction.input_errors import InputArchiveError, InputFileError
from prediction.settings import InputSettings
from weightkit.download.archive import ArchiveLimits, safe_extract_tar, safe_extract_zip
from weightkit.errors import ArchiveTooLargeError, DiskSpaceError, UnsafeArchiveError

__all__ = ["ARCHIVE", "MEDIA_EXTENSIONS", "place_input_file", "sniff_type"]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif", ".heic", ".heif"}
)
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".webm", ".mkv", ".avi", ".m4v"})
AUDIO_EXTENSIONS = frozenset({".wav", ".mp3", ".flac", ".ogg", ".m4a", ".opus"})
MEDIA_EXTENSIONS = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS | AUDIO_EXTENSIONS
ARCHIVE = frozenset({".zip", ".tar"})

_SNIFF_BYTES = 64
# What a damaged archive raises while its index is read or its members are (encrypted zip: RuntimeError).
_DAMAGED = (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, zlib.error, lzma.LZMAError, RuntimeError)


def place_input_file(path: Path, input_dir: Path, *, settings: InputSettings) -> list[str]:
    """Put `path` into `input_dir`; the names placed there (files, relative to `input_dir`), sorted.

    Raises `InputFileError` for a file of no known type, `InputArchiveError` for an archive that is
    refused (unsafe member, over a limit, damaged), with nothing left in `input_dir`.
    """
    path = Path(path)
    kind: str | None = _extension(path.name)
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
        return _iso_media(head)
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


# ISO base media (`ftyp` box) brands that are not a video: AVIF and HEIF images, QuickTime, audio.
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})
_OTHER_BRANDS = {b"qt  ": ".mov", b"M4A ": ".m4a", b"M4B ": ".m4a"}


def _iso_media(head: bytes) -> str:
    """The extension of an ISO base media file from its `ftyp` box: its major brand, and the compatible
    brands after it (a generic `mif1` image names `avif` there). An unknown brand is a video (`.mp4`):
    that is what the format mostly holds, and video loaders read it by content, not by name."""
    size = int.from_bytes(head[:4], "big")
    brands = [head[8:12]] + [head[i : i + 4] for i in range(16, min(size, len(head)) - 3, 4)]
    if any(brand in _AVIF_BRANDS for brand in brands):
        return ".avif"
    if any(brand in _HEIF_BRANDS for brand in brands):
        return ".heic"
    return _OTHER_BRANDS.get(brands[0], ".mp4")


def _unpack(archive: Path, kind: str, input_dir: Path, settings: InputSettings) -> list[str]:
    staging = Path(tempfile.mkdtemp(dir=input_dir, prefix=".unpack-"))
    try:
        extract = safe_extract_zip if kind == ".zip" else safe_extract_tar
        try:
            extract(archive, staging, limits=_limits(settings))
        except (UnsafeArchiveError, ArchiveTooLargeError) as exc:
            raise InputArchiveError(archive.name, _reason(exc), member=exc.member) from exc
        except DiskSpaceError as exc:
            raise InputArchiveError(archive.name, f"there is no room to unpack it ({exc})") from exc
        except _DAMAGED as exc:
            raise InputArchiveError(archive.name, f"it could not be unpacked ({exc})") from exc
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


def _limits(settings: InputSettings) -> ArchiveLimits:
    return ArchiveLimits(
        members=settings.archive_max_files,
        bytes=settings.archive_max_bytes,
        members_setting="INPUT_ARCHIVE_MAX_FILES",
        bytes_setting="INPUT_ARCHIVE_MAX_BYTES",
    )


def _reason(exc: UnsafeArchiveError | ArchiveTooLargeError) -> str:
    if isinstance(exc, UnsafeArchiveError):
        return exc.reason
    setting = f" (the limit set by {exc.setting})" if exc.setting else ""
    return f"it holds more than {exc.limit:,} {exc.unit}{setting}"
