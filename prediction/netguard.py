"""Which URLs a prediction may have fetched: only those leading to the public internet.

A URL given as a prediction input is fetched by this machine, which can reach addresses the user
cannot: the cloud's metadata service (169.254.169.254, fd00:ec2::254), this machine's own services, a
private network. `check_url` resolves the host once and refuses the URL if any of its addresses is one
of those (`special_addresses`); `URLGuard` hands the checked addresses to weightkit's downloader, which
connects to exactly those (so DNS cannot answer differently between the check and the connection) and
asks the guard again at every redirect hop. There is one HTTP client for every URL a prediction brings:
the downloader's. A deployment can allow some networks, or everything, with `ALLOW_PRIVATE_URLS` (see
`InputSettings`); cloud metadata hosts and addresses are reached only when it allows everything, whatever
networks it lists.

Proxy variables (`HTTP_PROXY`, `HTTPS_PROXY`) are not used: a proxy would make the connection, and the
addresses checked here would no longer be the ones reached.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from prediction.input_errors import InputDownloadError, InputError, RefusalKind, URLRefusedError
from prediction.settings import InputSettings
from prediction.special_addresses import IPAddress, address_problem, is_metadata_address
from weightkit.urlforms import display_url

__all__ = ["CheckedURL", "Resolver", "URLGuard", "check_url", "system_resolve"]

Resolver = Callable[[str, int], "list[str]"]

# Names that reach a cloud's instance metadata service without going through DNS on the internet.
METADATA_HOSTS = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal"}
)


@dataclass(frozen=True)
class CheckedURL:
    """A URL that may be fetched, and the addresses its host resolved to when it was checked."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


def check_url(url: str, *, settings: InputSettings, resolve: Resolver | None = None) -> CheckedURL:
    """Resolve the URL's host once (with `resolve`, DNS by default) and say whether it may be fetched.

    Raises `URLRefusedError` for a malformed URL, a scheme other than http/https, a URL without a host or
    with a user name, a metadata host name or address (unless the settings allow everything), or a host
    with any other address that is not public (unless the settings allow it), and `InputDownloadError`
    when the host does not resolve.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise URLRefusedError(url, f"it is not a valid URL ({exc})", kind="form") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        reason = f"only http and https URLs can be fetched, not {scheme or 'a bare path'}"
        raise URLRefusedError(url, reason, kind="form")
    if parts.username is not None or parts.password is not None:
        raise URLRefusedError(url, "URLs with a user name or password are not supported", kind="form")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise URLRefusedError(url, "it has no host name", kind="form")
    if not settings.allow_private_urls and host in METADATA_HOSTS:
        raise URLRefusedError(url, "it names a cloud metadata service", kind="metadata", host=host)
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        reason = "its host name is not a valid internet name"
        raise URLRefusedError(url, reason, kind="form", host=host) from exc
    port = port or (443 if scheme == "https" else 80)
    try:
        addresses = tuple(dict.fromkeys((resolve or system_resolve)(host, port)))
    except (OSError, UnicodeError) as exc:
        raise InputDownloadError(url, f"the host name {host} could not be resolved ({exc})") from exc
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone (fe80::1%eth0)
        problem = address_problem(address)
        if problem and not _allowed(address, settings):
            kind: RefusalKind = "metadata" if is_metadata_address(address) else "address"
            raise URLRefusedError(url, f"{address} is {problem}", kind=kind, host=host, address=str(address))
    return CheckedURL(url=url, scheme=scheme, host=host, port=port, addresses=addresses)


def _allowed(address: IPAddress, settings: InputSettings) -> bool:
    """Whether the settings open this non-public address: everything does; a listed network does unless
    the address is a cloud metadata service's."""
    if settings.allow_private_urls:
        return True
    if is_metadata_address(address):
        return False
    return any(address in network for network in settings.allowed_networks)


def system_resolve(host: str, port: int) -> list[str]:
    """The addresses DNS (or /etc/hosts) gives `host`; raises `OSError` when it does not resolve."""
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


class URLGuard:
    """The guard of every URL a prediction brings: its workflow URL, input URLs, loader URLs and Cog's
    `weights` URL, each fetched through weightkit's downloader, which calls this with the URL and with
    every redirect hop before requesting it.

    It answers with the `CheckedURL`, whose addresses the downloader pins the connection to, and keeps
    that answer: a URL asked about again (the downloader's next range request) gets the same addresses, so
    DNS is asked once per URL and what is checked is what is connected to. A refusal (`URLRefusedError`, or
    `InputDownloadError` for a host that does not resolve) is kept in `refusal` so that the caller can
    raise it as it is once the downloader gives up; `resolve` is the name lookup (a test maps names to
    loopback addresses with it).
    """

    def __init__(self, settings: InputSettings, *, resolve: Resolver = system_resolve) -> None:
        self.settings = settings
        self.resolve = resolve
        self.refusal: InputError | None = None
        self._checked: dict[str, CheckedURL] = {}
        self._lock = threading.Lock()  # the downloader's threads ask at once

    def __call__(self, url: str) -> CheckedURL:
        with self._lock:
            known = self._checked.get(url)
            if known is not None:
                return known
            try:
                checked = check_url(url, settings=self.settings, resolve=self.resolve)
            except (URLRefusedError, InputDownloadError) as exc:
                self.refusal = exc
                raise
            self._checked[url] = checked
            return checked

    def refused(self, asked: str) -> InputError | None:
        """The refusal of a hop of `asked`, worded for it (a redirect says where it came from), or None."""
        refusal = self.refusal
        if isinstance(refusal, URLRefusedError) and refusal.url != asked:
            reason = f"{refusal.reason}, and {display_url(asked)} redirected there"
            kind = refusal.kind
            return URLRefusedError(refusal.url, reason, kind=kind, host=refusal.host, address=refusal.address)
        return refusal
