"""Download a URL given as input: into memory or into a folder, guarded by netguard, with a byte limit.

A download is refused as soon as the server announces a size over the limit, and stopped as soon as it
sends more. A file is written under a temporary name in its folder and appears under its final name only
when complete; the final name comes from the server's Content-Disposition or the URL's path, stripped of
anything that could leave the folder, and made unique if taken.
"""

from __future__ import annotations

import http.client
import logging
import mimetypes
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prediction.input_errors import InputDownloadError, InputTooLargeError
from prediction.netguard import GuardedResponse, open_url
from prediction.settings import InputSettings
from weightkit.urlforms import display_url, safe_file_name, url_file_name

__all__ = ["Fetched", "download_to_folder", "fetch_bytes"]

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Fetched:
    """A document fetched into memory: its bytes, the URL it finally came from, its Content-Type."""

    data: bytes
    url: str
    content_type: str


def fetch_bytes(url: str, *, settings: InputSettings, max_bytes: int, limit_setting: str) -> Fetched:
    """The body of `url`, at most `max_bytes` long (`limit_setting` names the setting that raises it).

    Raises `URLRefusedError`, `InputDownloadError` (no answer, HTTP error status, broken transfer) or
    `InputTooLargeError`.
    """
    pieces: list[bytes] = []
    with open_url(url, settings=settings) as response:
        _stream(url, response, max_bytes, limit_setting, pieces.append)
        return Fetched(b"".join(pieces), response.url, response.headers.get_content_type())


def download_to_folder(url: str, folder: Path, *, settings: InputSettings) -> Path:
    """Download `url` into `folder` and return the file's path, at most `settings.download_max_bytes`.

    Raises like `fetch_bytes`; nothing is left in `folder` when it raises.
    """
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open_url(url, settings=settings) as response:
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".download-", suffix=".part")
        try:
            with os.fdopen(handle, "wb") as out:
                os.fchmod(handle, 0o644)  # not mkstemp's 0600: ComfyUI may run as another user
                size = _stream(
                    url, response, settings.download_max_bytes, "INPUT_DOWNLOAD_MAX_BYTES", out.write
                )
            path = _publish(Path(temporary), folder, _response_file_name(response))
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    log.info(
        "Downloaded %s (from %s) to %s: %d bytes in %.1f s",
        display_url(url),
        response.address,
        path,
        size,
        time.monotonic() - started,
    )
    return path


def _stream(
    url: str, response: GuardedResponse, limit: int, setting: str, write: Callable[[bytes], object]
) -> int:
    """Hand the body to `write` piece by piece; the number of bytes received."""
    if not 200 <= response.status < 300:
        raise InputDownloadError(
            url,
            f"the server answered HTTP {response.status} {response.response.reason}",
            status=response.status,
        )
    announced = _content_length(response)
    if announced is not None and announced > limit:
        raise InputTooLargeError(url, limit=limit, size=announced, setting=setting)
    received = 0
    try:
        while piece := response.read(_CHUNK):
            received += len(piece)
            if received > limit:
                raise InputTooLargeError(url, limit=limit, size=None, setting=setting)
            write(piece)
    except TimeoutError as exc:
        raise InputDownloadError(url, f"the transfer stalled after {received:,} bytes") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise InputDownloadError(url, f"the transfer broke after {received:,} bytes ({exc!r})") from exc
    if announced is not None and received != announced:
        raise InputDownloadError(url, f"the connection closed after {received:,} of {announced:,} bytes")
    return received


def _content_length(response: GuardedResponse) -> int | None:
    raw = response.headers.get("Content-Length")
    if raw is None or "chunked" in response.headers.get("Transfer-Encoding", "").lower():
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def _response_file_name(response: GuardedResponse) -> str:
    """The name the server gives (Content-Disposition), else the URL's, with an extension if known."""
    name = safe_file_name(response.headers.get_filename() or "") or url_file_name(response.url)
    if "." not in name and response.headers.get("Content-Type"):
        extension = mimetypes.guess_extension(response.headers.get_content_type())
        if extension and extension != ".bin":
            name += extension
    return name


def _publish(temporary: Path, folder: Path, name: str) -> Path:
    """Give the complete file `name` in `folder`, or `stem_1.ext`, `stem_2.ext`... if taken.

    A hard link never replaces an existing file, so two downloads can never take the same name.
    """
    stem, dot, extension = name.rpartition(".")
    if not stem:
        stem, dot, extension = name, "", ""
    candidate, n = folder / name, 0
    while True:
        try:
            os.link(temporary, candidate)
        except FileExistsError:
            n += 1
            candidate = folder / f"{stem}_{n}{dot}{extension}"
            continue
        temporary.unlink()
        return candidate
