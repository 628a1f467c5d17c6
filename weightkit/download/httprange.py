"""HTTP/1.1 GET of a byte range, over kept-alive connections, following redirects by hand: the one GET
every download makes (weights now; URL inputs of predictions can use it too). `send` is its one
request, which the HEAD asking a host what it states about a file (`hostfacts.py`) shares.

Redirects are followed here rather than by a library so that credentials are decided per hop: a token
goes only to the origin it belongs to, never to the CDN a host redirects to; and so that a guard sees
every hop before it is requested. A guard that answers with the `addresses` it checked pins the
connection: it goes to one of exactly those addresses, never to a fresh DNS answer, while the Host
header and the TLS server name and certificate stay those of the URL's host. A kept-alive connection is
reused only for the same (scheme, host, port, address).

Why the standard library's `http.client` and not urllib3 or requests: `python -m bench download`
reads one stream with each in the same run, and both reach 3-4 GB/s, several times what the rest of a
download (page-cache writes, sha256) can take, so speed does not decide it. `http.client` is no extra
dependency, its `readinto` fills one reused buffer (no allocation per block, flat memory), and
redirects followed here keep tokens on their own origin. Figures in docs/DOWNLOAD.md.
"""

from __future__ import annotations

import http.client
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NoReturn, Protocol
from urllib.parse import urljoin, urlsplit

from weightkit.download.connections import Connections, Key
from weightkit.download.httperrors import (
    AuthError,
    RangeNotSatisfiable,
    RetryableError,
    SourceError,
    describe,
)
from weightkit.download.retry import parse_retry_after
from weightkit.download.urls import credential_for, display_url
from weightkit.settings import Credential

__all__ = [
    "AuthError",
    "Checked",
    "Connections",
    "Guard",
    "Hop",
    "RangeNotSatisfiable",
    "Reply",
    "RetryableError",
    "SourceError",
    "describe",
    "fail",
    "open_range",
    "redirect_target",
    "send",
]

USER_AGENT = "weightkit/0.1 (cog-comfyui)"
MAX_REDIRECTS = 10
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)
_SMALL_BODY = 64 << 10


class Checked(Protocol):
    """What a guard may answer: the addresses it checked for the URL's host (None: not pinned)."""

    @property
    def addresses(self) -> tuple[str, ...] | None: ...


# Called with every URL before it is requested: raises ValueError to refuse it; answers a `Checked`
# (any object with `addresses`) to pin the connection, or anything else (None) not to.
Guard = Callable[[str], object]


@dataclass
class Reply:
    """A 200 or 206 response whose body starts at byte `start` of a file of `total` bytes (None: unknown).

    `length` is the body's length if the server stated it; `framed` says whether the body's end is
    known when it comes (a stated length, or chunked encoding's last chunk) rather than being merely
    the connection closing, which a cut connection looks like too."""

    url: str
    status: int
    start: int
    length: int | None
    total: int | None
    etag: str | None
    last_modified: str | None
    body: http.client.HTTPResponse
    key: Key

    @property
    def ranged(self) -> bool:
        return self.status == 206

    @property
    def framed(self) -> bool:
        return self.length is not None or bool(self.body.chunked)


def open_range(
    conns: Connections,
    url: str,
    start: int,
    end: int | None,
    *,
    credentials: Iterable[Credential],
    guard: Guard | None = None,
) -> Reply:
    """GET bytes `start`..`end` (inclusive; None: to the end) of `url`, following redirects. `guard` is
    asked about every URL first, redirect targets included; when it answers with addresses, the
    connection goes to one of them (see the module docstring). `credentials` are sent each to its own
    origin only; pass none to send no token anywhere.

    Returns the 200 or 206 reply with its body unread. Raises `RetryableError` for network failures,
    408/429/5xx (with the server's `Retry-After`), `AuthError` for 401/403, `RangeNotSatisfiable` for
    416 and `SourceError` for any other answer that retrying will not change, and for a URL the guard
    refuses.
    """
    credentials = tuple(credentials)
    headers = {"Range": f"bytes={start}-{'' if end is None else end}"}
    for _ in range(MAX_REDIRECTS + 1):
        hop = send(conns, url, "GET", headers, credentials=credentials, guard=guard)
        if hop.redirected:
            url = redirect_target(conns, hop)
            continue
        if hop.response.status in (200, 206):
            return _reply(url, hop.key, hop.response, start)
        fail(conns, hop)
    raise SourceError(f"more than {MAX_REDIRECTS} redirects")


@dataclass
class Hop:
    """One request of a chain of redirects and its response (its body unread): the URL asked, the
    connection it went on, the credential its origin takes and whether its token was sent."""

    url: str
    key: Key
    response: http.client.HTTPResponse
    credential: Credential | None
    sent: bool

    @property
    def redirected(self) -> bool:
        return self.response.status in _REDIRECTS


def send(
    conns: Connections,
    url: str,
    method: str,
    headers: dict[str, str],
    *,
    credentials: tuple[Credential, ...],
    guard: Guard | None,
) -> Hop:
    """One request of `method` to `url`, vetted by `guard` (and pinned to its addresses), with the
    token of `url`'s own origin if one is configured. Raises `SourceError` for a URL the guard refuses
    or that is not http(s), `RetryableError` for a network failure."""
    addresses = _guarded(guard, url)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise SourceError(f"unsupported URL {display_url(url)}")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise SourceError(f"bad port in {display_url(url)}") from exc
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {"User-Agent": USER_AGENT, **headers}
    credential = credential_for(url, credentials)
    if credential is not None and credential.token:
        headers["Authorization"] = f"Bearer {credential.token}"
    key, response = _send(conns, (scheme, parts.hostname, port, addresses), method, target, headers)
    return Hop(url, key, response, credential, "Authorization" in headers)


def redirect_target(conns: Connections, hop: Hop) -> str:
    """Where a redirect leads (its small body read, so the connection carries the next request)."""
    location = hop.response.getheader("Location")
    _finish(conns, hop.key, hop.response)
    if not location:
        raise SourceError(f"HTTP {hop.response.status} redirect without a Location")
    return urljoin(hop.url, location)


def fail(conns: Connections, hop: Hop) -> NoReturn:
    """Raise the typed error for a response that is neither a success nor a redirect."""
    _finish(conns, hop.key, hop.response)
    _raise_for(hop.response.status, hop.response, hop.url, hop.credential, hop.sent)


def _guarded(guard: Guard | None, url: str) -> tuple[str, ...] | None:
    """Ask the guard about `url`: the addresses to pin the connection to, or None (not pinned)."""
    if guard is None:
        return None
    try:
        checked = guard(url)
    except ValueError as exc:
        raise SourceError(f"refused {display_url(url)}: {exc}") from exc
    addresses = getattr(checked, "addresses", None)
    if addresses is None:
        return None
    addresses = tuple(str(address) for address in addresses)
    if not addresses:
        raise SourceError(f"refused {display_url(url)}: the guard checked no address for its host")
    return addresses


def _send(
    conns: Connections,
    where: tuple[str, str, int, tuple[str, ...] | None],
    method: str,
    target: str,
    headers: dict[str, str],
) -> tuple[Key, http.client.HTTPResponse]:
    """Send on the kept-alive connection; a connection the server closed while idle is retried once."""
    for _ in range(2):
        conn, key, reused = conns.get(*where)
        try:
            conn.request(method, target, headers=headers)
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conns.discard(key)
            if reused and not isinstance(exc, TimeoutError):
                continue
            raise RetryableError(describe(exc)) from exc
        conns.mark_used(key)
        return key, response
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _finish(conns: Connections, key: Key, response: http.client.HTTPResponse) -> None:
    """Read a small unwanted body so the connection can carry the next request; close it otherwise."""
    length = response.length
    if length is not None and length <= _SMALL_BODY:
        try:
            response.read()
        except (OSError, http.client.HTTPException):
            conns.discard(key)
            return
        if response.will_close:
            conns.discard(key)
        return
    conns.discard(key)


def _reply(url: str, key: Key, response: http.client.HTTPResponse, start: int) -> Reply:
    etag = response.getheader("ETag")
    last_modified = response.getheader("Last-Modified")
    length = response.length
    if response.status == 200:
        return Reply(url, 200, 0, length, length, etag, last_modified, response, key)
    match = _CONTENT_RANGE.fullmatch((response.getheader("Content-Range") or "").strip())
    if match is None:
        response.close()
        raise RetryableError(f"206 with an unreadable Content-Range {response.getheader('Content-Range')!r}")
    first, last = int(match.group(1)), int(match.group(2))
    total = None if match.group(3) == "*" else int(match.group(3))
    if first != start or last < first or (total is not None and last >= total):
        response.close()
        raise RetryableError(f"asked for bytes from {start}, server sent {match.group(0)}")
    return Reply(url, 206, first, last - first + 1, total, etag, last_modified, response, key)


def _raise_for(
    status: int,
    response: http.client.HTTPResponse,
    url: str,
    credential: Credential | None,
    sent: bool,
) -> NoReturn:
    reason = f"HTTP {status} {response.reason}".rstrip()
    if status in _RETRYABLE:
        retry_after = parse_retry_after(response.getheader("Retry-After")) if status in (429, 503) else None
        raise RetryableError(reason, retry_after=retry_after)
    if status in (401, 403):
        if credential is not None and not sent:
            reason += f" from {display_url(url)}: it needs a token; set {credential.env_var}"
        elif credential is not None:
            reason += (
                f" from {display_url(url)}: the {credential.env_var} token was refused; check that its "
                "account has accepted the model's license"
            )
        raise AuthError(reason, credential=credential, sent=sent)
    if status == 416:
        match = re.fullmatch(r"bytes\s+\*/(\d+)", (response.getheader("Content-Range") or "").strip())
        total = int(match.group(1)) if match else None
        raise RangeNotSatisfiable(f"{reason}: the server's file is shorter than expected", total=total)
    raise SourceError(reason)
