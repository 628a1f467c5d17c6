"""Download a URL given as input: into memory or into a folder, with a byte limit and a deadline.

The request is the one every download makes (`weightkit.download.httprange.open_range`, the body read
by its `Stream`): redirects followed by hand, every hop vetted by `netguard.URLGuard` and connected to
at exactly the addresses checked, no token sent to any host. A download is refused as soon as the
server announces a size over the limit, and stopped as soon as it sends more, stalls, trickles below
the minimum rate, or outlasts its deadline. A file is written under a temporary name in its folder and
appears under its final name only when complete; the final name comes from the server's
Content-Disposition or the URL's path, stripped of anything that could leave the folder, and made
unique if taken.
"""

from __future__ import annotations

import contextlib
import logging
import mimetypes
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from prediction.input_errors import InputDownloadError, InputTooLargeError
from prediction.netguard import URLGuard
from prediction.settings import InputSettings
from weightkit.download.httprange import Connections, Reply, RetryableError, SourceError, open_range
from weightkit.download.rate import RateFloor
from weightkit.download.stream import Stream
from weightkit.urlforms import display_url, safe_file_name, url_file_name

__all__ = ["Fetched", "download_to_folder", "fetch_bytes"]

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_MAX_NAME_BYTES = 200  # under the 255 of file systems, with room for `_n` when the name is taken
_STATUS = re.compile(r"HTTP (\d{3})\b")


@dataclass(frozen=True)
class Fetched:
    """A document fetched into memory: its bytes, the URL it finally came from, its Content-Type."""

    data: bytes
    url: str
    content_type: str


def fetch_bytes(
    url: str, *, settings: InputSettings, max_bytes: int, limit_setting: str, guard: URLGuard | None = None
) -> Fetched:
    """The body of `url`, at most `max_bytes` long (`limit_setting` names the setting that raises it);
    `guard` vets every hop (a `URLGuard` of `settings` unless given).

    Raises `URLRefusedError`, `InputDownloadError` (no answer, HTTP error status, broken, stalled,
    trickling or overlong transfer) or `InputTooLargeError`.
    """
    pieces: list[bytes] = []
    with _get(url, settings, guard or URLGuard(settings)) as (reply, stream):
        _copy(url, reply, stream, settings, max_bytes, limit_setting, pieces.append)
        return Fetched(b"".join(pieces), reply.url, reply.body.headers.get_content_type())


def download_to_folder(
    url: str, folder: Path, *, settings: InputSettings, guard: URLGuard | None = None
) -> Path:
    """Download `url` into `folder` and return the file's path, at most `settings.download_max_bytes`.

    Raises like `fetch_bytes`; nothing is left in `folder` when it raises.
    """
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with _get(url, settings, guard or URLGuard(settings)) as (reply, stream):
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".download-", suffix=".part")
        try:
            with os.fdopen(handle, "wb") as out:
                os.fchmod(handle, 0o644)  # not mkstemp's 0600: ComfyUI may run as another user
                limit = settings.download_max_bytes
                size = _copy(url, reply, stream, settings, limit, "INPUT_DOWNLOAD_MAX_BYTES", out.write)
            path = _publish(Path(temporary), folder, _response_file_name(reply))
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    log.info(
        "Downloaded %s to %s: %d bytes in %.1f s", display_url(url), path, size, time.monotonic() - started
    )
    return path


@contextlib.contextmanager
def _get(url: str, settings: InputSettings, guard: URLGuard) -> Iterator[tuple[Reply, Stream]]:
    """The reply to a GET of `url` through the downloader's reader, with no token sent anywhere, every
    hop vetted by the URL guard and connected to as checked, and its body as a stream that gives up on
    a stall, a trickle below `INPUT_DOWNLOAD_MIN_RATE` and at the deadline."""
    guard(url)  # refused here as it is, before weightkit would print a URL it cannot split
    with Connections(timeout=settings.download_timeout) as conns:
        try:
            reply = open_range(conns, url, 0, None, credentials=(), guard=guard)
        except (SourceError, RetryableError) as exc:
            raise guard.refused(url) or _download_error(url, exc) from exc
        except ValueError as exc:  # a redirect to a URL Python cannot split (`http://[::1`)
            malformed = InputDownloadError(url, f"it redirected to a malformed URL ({exc})")
            raise guard.refused(url) or malformed from exc
        floor = RateFloor(bytes_per_second=settings.download_min_rate, window=settings.min_rate_window)
        deadline = time.monotonic() + settings.download_deadline
        with Stream(
            reply, conns, floor=floor, deadline=deadline, stall_timeout=settings.download_timeout
        ) as s:
            yield reply, s


def _download_error(url: str, exc: SourceError | RetryableError) -> InputDownloadError:
    status = _STATUS.match(exc.reason)
    if status:
        return InputDownloadError(url, f"the server answered {exc.reason}", status=int(status.group(1)))
    return InputDownloadError(url, f"the connection failed ({exc.reason})")


def _copy(
    url: str,
    reply: Reply,
    stream: Stream,
    settings: InputSettings,
    limit: int,
    setting: str,
    write: Callable[[bytes], object],
) -> int:
    """Hand the body to `write` piece by piece; the number of bytes received."""
    if reply.length is not None and reply.length > limit:
        raise InputTooLargeError(url, limit=limit, size=reply.length, setting=setting)
    received = 0
    try:
        while piece := stream.read(_CHUNK):
            received += len(piece)
            if received > limit:
                raise InputTooLargeError(url, limit=limit, size=None, setting=setting)
            write(piece)
    except RetryableError as exc:
        raise InputDownloadError(url, f"the transfer broke after {received:,} bytes ({exc.reason})") from exc
    except SourceError as exc:  # the deadline
        raise InputDownloadError(
            url,
            f"it took longer than {settings.download_deadline:g} s (INPUT_DOWNLOAD_DEADLINE), "
            f"{received:,} bytes received",
        ) from exc
    return received


def _response_file_name(reply: Reply) -> str:
    """The name the server gives (Content-Disposition), else the URL's, with an extension if known,
    at most `_MAX_NAME_BYTES` bytes long."""
    headers = reply.body.headers
    name = safe_file_name(headers.get_filename() or "") or url_file_name(reply.url)
    if "." not in name and headers.get("Content-Type"):
        extension = mimetypes.guess_extension(headers.get_content_type())
        if extension and extension != ".bin":
            name += extension
    return _byte_capped(name)


def _byte_capped(name: str) -> str:
    """`name` cut to `_MAX_NAME_BYTES` of UTF-8, its extension kept: file systems count bytes (255),
    and weightkit's `safe_file_name` counts characters, so 120 CJK ones are 360 bytes."""
    if len(name.encode()) <= _MAX_NAME_BYTES:
        return name
    stem, dot, extension = name.rpartition(".")
    if not (stem and 0 < len(extension.encode()) <= 16):
        stem, dot, extension = name, "", ""
    room = _MAX_NAME_BYTES - len((dot + extension).encode())
    return stem.encode()[:room].decode("utf-8", errors="ignore") + dot + extension


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
