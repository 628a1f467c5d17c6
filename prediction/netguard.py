"""Fetch a URL only if it leads to the public internet: no loopback, private, link-local or metadata hosts.

A URL given as a prediction input is fetched by this machine, which can reach addresses the user
cannot: the cloud's metadata service (169.254.169.254, fd00:ec2::254), this machine's own services, a
private network. `check_url` resolves the host once and refuses the URL if any of its addresses is one
of those; `open_url` then connects to exactly the addresses it checked (so DNS cannot answer differently
between the check and the connection) and checks every redirect hop the same way. A deployment can allow
some networks, or everything, with `ALLOW_PRIVATE_URLS` (see `InputSettings`).

Proxy variables (`HTTP_PROXY`, `HTTPS_PROXY`) are not used: a proxy would make the connection, and the
addresses checked here would no longer be the ones reached.
"""

from __future__ import annotations

import http.client
import ipaddress
import logging
import socket
import ssl
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import quote, urljoin, urlsplit

from prediction.input_errors import InputDownloadError, URLRefusedError
from prediction.settings import InputSettings
from prediction.special_addresses import IPAddress, address_problem
from weightkit.urlforms import display_url

__all__ = ["CheckedURL", "GuardedResponse", "check_url", "open_url"]

log = logging.getLogger(__name__)

# Names that reach a cloud's instance metadata service without going through DNS on the internet.
METADATA_HOSTS = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal"}
)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_USER_AGENT = "cog-comfyui"
# Characters that may stay as they are in a request target; anything else is percent-encoded.
_TARGET_SAFE = "/:@!$&'()*+,;=-._~%?"


@dataclass(frozen=True)
class CheckedURL:
    """A URL that may be fetched, and the addresses its host resolved to when it was checked."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]
    target: str  # path and query, as sent in the request line


def check_url(url: str, *, settings: InputSettings) -> CheckedURL:
    """Resolve the URL's host once and say whether it may be fetched.

    Raises `URLRefusedError` for a scheme other than http/https, a URL without a host or with a user
    name, a metadata host name, or a host with any address that is not public (unless the settings allow
    it), and `InputDownloadError` when the host does not resolve.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise URLRefusedError(url, f"it is not a valid URL ({exc})") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise URLRefusedError(url, f"only http and https URLs can be fetched, not {scheme or 'a bare path'}")
    if parts.username is not None or parts.password is not None:
        raise URLRefusedError(url, "URLs with a user name or password are not supported")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise URLRefusedError(url, "it has no host name")
    if not settings.allow_private_urls and host in METADATA_HOSTS:
        raise URLRefusedError(url, "it names a cloud metadata service", host=host)
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise URLRefusedError(url, "its host name is not a valid internet name", host=host) from exc
    port = port or (443 if scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise InputDownloadError(url, f"the host name {host} could not be resolved ({exc})") from exc
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone (fe80::1%eth0)
        problem = address_problem(address)
        if problem and not _allowed(address, settings):
            raise URLRefusedError(url, f"{address} is {problem}", host=host, address=str(address))
    target = quote(parts.path or "/", safe=_TARGET_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=_TARGET_SAFE)
    return CheckedURL(url=url, scheme=scheme, host=host, port=port, addresses=addresses, target=target)


def _allowed(address: IPAddress, settings: InputSettings) -> bool:
    return settings.allow_private_urls or any(address in network for network in settings.allowed_networks)


class GuardedResponse:
    """The final (non-redirect) response to a GET that `open_url` made; close it, or use `with`."""

    def __init__(
        self,
        url: str,
        address: str,
        connection: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
    ) -> None:
        self.url = url
        self.address = address
        self._connection = connection
        self.response = response

    @property
    def status(self) -> int:
        return self.response.status

    @property
    def headers(self) -> http.client.HTTPMessage:
        return self.response.headers

    def read(self, size: int) -> bytes:
        return self.response.read(size)

    def close(self) -> None:
        self.response.close()
        self._connection.close()

    def __enter__(self) -> GuardedResponse:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_url(url: str, *, settings: InputSettings, max_redirects: int = 5) -> GuardedResponse:
    """GET `url`, following redirects, each hop checked by `check_url` and connected to as checked.

    Returns the first response that is not a redirect, whatever its status. Raises `URLRefusedError`
    for a refused hop and `InputDownloadError` when a host does not answer in time, the connection
    fails, or there are more than `max_redirects` redirects.
    """
    current = url
    for _ in range(max_redirects + 1):
        try:
            checked = check_url(current, settings=settings)
        except URLRefusedError as exc:
            if current == url:
                raise
            reason = f"{exc.reason}, and {display_url(url)} redirected there"
            raise URLRefusedError(current, reason, host=exc.host, address=exc.address) from exc
        response = _get(checked, settings.download_timeout)
        location = response.headers.get("Location")
        if response.status not in _REDIRECTS or not location:
            return response
        response.close()
        following = urljoin(current, location.strip())
        log.debug("%s redirects (%d) to %s", display_url(current), response.status, display_url(following))
        current = following
    raise InputDownloadError(url, f"it redirects more than {max_redirects} times")


def _get(checked: CheckedURL, timeout: float) -> GuardedResponse:
    connection: _PinnedHTTPConnection | _PinnedHTTPSConnection
    if checked.scheme == "https":
        connection = _PinnedHTTPSConnection(checked, timeout)
    else:
        connection = _PinnedHTTPConnection(checked, timeout)
    try:
        connection.request(
            "GET", checked.target, headers={"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
        )
        response = connection.getresponse()
        return GuardedResponse(checked.url, connection.connected_to, connection, response)
    except TimeoutError as exc:
        connection.close()
        raise InputDownloadError(checked.url, f"no answer within {timeout:g} seconds") from exc
    except (OSError, http.client.HTTPException) as exc:
        connection.close()
        raise InputDownloadError(checked.url, f"the connection failed ({exc})") from exc


def _connect(checked: CheckedURL, timeout: float) -> tuple[socket.socket, str]:
    """A socket to the first of the checked addresses that accepts; the timeout stays on for reads."""
    failure = OSError(f"{checked.host} has no address")
    for address in checked.addresses:
        try:
            return socket.create_connection((address, checked.port), timeout=timeout), address
        except OSError as exc:
            failure = exc
    raise failure


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to the checked addresses; the Host header still names the URL's host."""

    def __init__(self, checked: CheckedURL, timeout: float) -> None:
        super().__init__(checked.host, checked.port, timeout=timeout)
        self.checked = checked
        self.seconds = timeout
        self.connected_to = ""

    def connect(self) -> None:
        self.sock, self.connected_to = _connect(self.checked, self.seconds)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to the checked addresses; the certificate is verified for the URL's host name."""

    def __init__(self, checked: CheckedURL, timeout: float) -> None:
        self.tls = ssl.create_default_context()
        super().__init__(checked.host, checked.port, timeout=timeout, context=self.tls)
        self.checked = checked
        self.seconds = timeout
        self.connected_to = ""

    def connect(self) -> None:
        sock, self.connected_to = _connect(self.checked, self.seconds)
        try:
            self.sock = self.tls.wrap_socket(sock, server_hostname=self.checked.host)
        except BaseException:
            sock.close()
            raise
