"""What a host states about a file before any byte of it is written: Hugging Face's size and sha256.

Hugging Face states each LFS file's exact size and sha256 in its answer to the resolve URL: the
redirect to its CDN carries `X-Linked-Size` and `X-Linked-Etag` (the sha256, quoted). huggingface_hub
reads them the same way (`get_hf_file_metadata` in `src/huggingface_hub/file_download.py`): one HEAD
with `Accept-Encoding: identity`, following only relative redirects (a renamed repository) and never
the one to the CDN; `X-Linked-Etag` stripped of `W/` and quotes (`_normalize_etag`), `X-Linked-Size`
as a whole number, and the sha256 recognised as 64 lowercase hex digits (`REGEX_SHA256`) before it
hashes a local file to compare. huggingface_hub falls back to `ETag` and `Content-Length` when the
linked headers are absent; here nothing falls back, because for a file kept in git rather than LFS the
`ETag` is a git blob sha1, not a sha256, and a redirect's `Content-Length` is its own body's. An answer
without both linked headers is refused, never trusted.

`ask_host` is the downloader's step: a request whose size and sha256 are the host's to state gets them
here, from the first Hugging Face URL that states both (same-origin redirects followed, each hop
guarded, the token only for its own origin), and is then an ordinary verified request. `probe_size`
and `get_json` are the other small questions the `add` command and CivitAI's API need, on the same
guarded path.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, replace
from typing import Any

from weightkit.download.control import Cancelled, Stop, Stopped
from weightkit.download.httprange import (
    AuthError,
    Connections,
    Guard,
    Hop,
    RetryableError,
    SourceError,
    fail,
    open_range,
    redirect_target,
    send,
)
from weightkit.download.request import FetchRequest
from weightkit.download.stream import Stream
from weightkit.download.urls import display_url, on_hugging_face, origin, request_url
from weightkit.download.workers import pause
from weightkit.errors import GatedWeightError, HostFactsError
from weightkit.settings import Credential, DownloadSettings

__all__ = [
    "JSON_LIMIT",
    "LINKED_ETAG",
    "LINKED_SIZE",
    "HostFacts",
    "ask_host",
    "get_json",
    "hugging_face_facts",
    "probe_size",
]

log = logging.getLogger(__name__)

LINKED_SIZE = "X-Linked-Size"
LINKED_ETAG = "X-Linked-Etag"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MAX_HOPS = 10
JSON_LIMIT = 32 << 20  # bytes of an API answer; CivitAI's answer for a model of many versions is ~1 MB


@dataclass(frozen=True)
class HostFacts:
    """What the host stated for `url`: the file's exact `size` and `sha256`."""

    url: str
    size: int
    sha256: str


def hugging_face_facts(
    url: str,
    *,
    settings: DownloadSettings,
    guard: Guard | None = None,
    send_credentials: bool = True,
    stop: Stop | None = None,
) -> HostFacts:
    """Ask Hugging Face (at `WEIGHTS_HF_ENDPOINT`) for the size and sha256 of the file at the resolve
    URL `url`, with one HEAD per same-origin hop and no byte of the file. Raises `SourceError` (an
    `AuthError` for 401/403) when the answer states neither or not both, or is an error; retries what
    a retry may cure as downloads do."""
    asked = request_url(url, settings)
    credentials = settings.credentials if send_credentials else ()
    failures = 0
    stop = stop or Stop()
    while True:
        with Connections(timeout=settings.stall_timeout) as conns:
            stop.on_set(conns.abort)
            try:
                return _head(conns, asked, credentials=credentials, guard=guard)
            except RetryableError as exc:
                failures += 1
                try:
                    pause(exc, failures, settings=settings, stop=stop, label=display_url(asked))
                except Stopped:
                    raise Cancelled(display_url(asked)) from None


def _head(
    conns: Connections, url: str, *, credentials: tuple[Credential, ...], guard: Guard | None
) -> HostFacts:
    headers = {"Accept-Encoding": "identity"}
    for _ in range(_MAX_HOPS):
        hop = send(conns, url, "HEAD", headers, credentials=credentials, guard=guard)
        if hop.redirected:
            target = redirect_target(conns, hop)
            if origin(target) == origin(url):  # a renamed repository: ask its new URL
                url = target
                continue
            return _linked(hop)
        if hop.response.status == 200:
            hop.response.read()
            return _linked(hop)
        fail(conns, hop)
    raise SourceError(f"more than {_MAX_HOPS} redirects on Hugging Face's own host")


def _linked(hop: Hop) -> HostFacts:
    """The linked size and sha256 of an answer, or `SourceError` saying which is missing or unreadable."""
    size_text = (hop.response.getheader(LINKED_SIZE) or "").strip()
    etag = (hop.response.getheader(LINKED_ETAG) or "").strip()
    sha256 = etag.removeprefix("W/").strip('"').lower()
    missing = [name for name, value in ((LINKED_SIZE, size_text), (LINKED_ETAG, etag)) if not value]
    status = f"HTTP {hop.response.status}"
    if missing:
        raise SourceError(
            f"Hugging Face's answer ({status}) has no {' and no '.join(missing)} header, so it does not "
            "state the file's size and sha256"
        )
    if not size_text.isdigit() or int(size_text) <= 0:
        raise SourceError(f"Hugging Face's {LINKED_SIZE} {size_text!r} is not a size in bytes")
    if not _SHA256.fullmatch(sha256):
        raise SourceError(f"Hugging Face's {LINKED_ETAG} {etag!r} is not a sha256 (not an LFS file)")
    return HostFacts(hop.url, int(size_text), sha256)


def ask_host(request: FetchRequest, settings: DownloadSettings, stop: Stop) -> FetchRequest:
    """`request` with the size and sha256 Hugging Face states for it, if they are the host's to state;
    unchanged otherwise. Raises `HostFactsError` (naming each URL and what its answer lacked) when no
    Hugging Face URL states both, or states a size other than the manifest's, and `GatedWeightError`
    when the host wants a token that is not set. Nothing is written either way."""
    if not request.ask_host or (request.size is not None and request.sha256 is not None):
        return request
    attempts: list[tuple[str, str]] = []
    gated: tuple[str, str] | None = None
    for url in request.urls:
        shown = display_url(request_url(url, settings))
        if not on_hugging_face(url):
            attempts.append((shown, "not a Hugging Face resolve URL, so no host states its sha256"))
            continue
        try:
            facts = hugging_face_facts(
                url,
                settings=settings,
                guard=request.url_guard,
                send_credentials=request.send_credentials,
                stop=stop,
            )
        except SourceError as exc:
            attempts.append((shown, exc.reason))
            if isinstance(exc, AuthError) and exc.credential is not None and not exc.sent:
                gated = gated or (shown, exc.credential.env_var)
            continue
        if request.size is not None and facts.size != request.size:
            attempts.append((shown, f"Hugging Face states {facts.size} bytes, the manifest {request.size}"))
            continue
        log.info(
            "%s: Hugging Face states %d bytes, sha256 %s (%s)", request.label, facts.size, facts.sha256, shown
        )
        return replace(request, size=facts.size, sha256=facts.sha256, hash_from="huggingface", ask_host=False)
    if gated is not None:
        raise GatedWeightError(
            request.label, dest=str(request.dest), url=gated[0], env_var=gated[1], attempts=tuple(attempts)
        )
    raise HostFactsError(request.label, dest=str(request.dest), attempts=tuple(attempts))


def probe_size(
    url: str, *, settings: DownloadSettings, guard: Guard | None = None, send_credentials: bool = True
) -> int | None:
    """The size of the file at `url` from one request for its first byte (redirects followed, the
    token only to its own origin): a 206's `Content-Range` total, a 200's length; None if unstated.
    Raises `SourceError` / `RetryableError` like a download's first request."""
    credentials = settings.credentials if send_credentials else ()
    with Connections(timeout=settings.stall_timeout) as conns:
        reply = open_range(conns, request_url(url, settings), 0, 0, credentials=credentials, guard=guard)
        reply.body.close()
        return reply.total


def get_json(
    url: str,
    *,
    settings: DownloadSettings,
    guard: Guard | None = None,
    send_credentials: bool = True,
    limit: int = JSON_LIMIT,
    seconds: float = 60.0,
) -> Any:
    """The JSON document at `url` (an API answer), read whole within `limit` bytes and `seconds`.
    Raises `SourceError` for an error status, a body over the limit or one that is not JSON, and
    `RetryableError` for a network failure."""
    credentials = settings.credentials if send_credentials else ()
    body = bytearray()
    with Connections(timeout=settings.stall_timeout) as conns:
        reply = open_range(conns, request_url(url, settings), 0, None, credentials=credentials, guard=guard)
        with Stream(reply, conns, deadline=time.monotonic() + seconds) as stream:
            while piece := stream.read(64 << 10):
                body += piece
                if len(body) > limit:
                    raise SourceError(f"the answer of {display_url(url)} is larger than {limit} bytes")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise SourceError(f"the answer of {display_url(url)} is not JSON ({exc})") from exc
