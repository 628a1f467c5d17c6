"""Kept-alive HTTP connections of one thread, plain or pinned to the addresses a guard checked.

A pinned connection goes to one of exactly the addresses a guard answered for the URL's host, never to
a fresh DNS answer, while the Host header and the TLS server name and certificate check stay those of
the URL's host; so DNS cannot answer one address to the guard's check and another to the connection.
A kept-alive connection is reused only for the same (scheme, host, port, address).
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import socket
import ssl

from weightkit.download.httperrors import RetryableError, describe

__all__ = ["Connections", "Key"]

# (scheme, host, port, address): the address is the pinned one, or None for the system's resolver.
Key = tuple[str, str, int, str | None]


@functools.lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to one checked address; the Host header names the URL's host."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to one checked address; TLS names, and the certificate must be valid for, the URL's host."""

    def __init__(self, host: str, port: int, address: str, timeout: float, tls: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=tls)
        self.address = address
        self.tls = tls

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


class Connections:
    """One thread's kept-alive connections, one per (scheme, host, port, pinned address).

    `abort()` may be called from another thread: it shuts the sockets down so a blocked read returns
    at once instead of waiting for the stall timeout. Also a context manager that closes them all.
    """

    def __init__(self, *, timeout: float) -> None:
        self._timeout = timeout
        self._open: dict[Key, http.client.HTTPConnection] = {}
        self._used: set[Key] = set()
        self._aborted = False

    def __enter__(self) -> Connections:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(
        self, scheme: str, host: str, port: int, addresses: tuple[str, ...] | None
    ) -> tuple[http.client.HTTPConnection, Key, bool]:
        """A connection to `host` (to one of `addresses` when pinned), its key, and whether it carried
        a request before (it may have gone stale). A pinned connection is opened here, trying each
        address in turn; raises `RetryableError` when none accepts."""
        if self._aborted:
            raise RetryableError("download stopped")
        if addresses is None:
            key: Key = (scheme, host, port, None)
            conn = self._open.get(key)
            if conn is None:
                conn = self._open[key] = self._connection(scheme, host, port, None)
                return conn, key, False
            return conn, key, key in self._used
        for address in addresses:
            key = (scheme, host, port, address)
            if key in self._open:
                return self._open[key], key, key in self._used
        failure: BaseException = OSError(f"{host} has no checked address to connect to")
        for address in addresses:
            conn = self._connection(scheme, host, port, address)
            try:
                conn.connect()
            except (OSError, ssl.SSLError) as exc:
                conn.close()
                failure = exc
                continue
            key = (scheme, host, port, address)
            self._open[key] = conn
            return conn, key, False
        raise RetryableError(describe(failure)) from failure

    def _connection(
        self, scheme: str, host: str, port: int, address: str | None
    ) -> http.client.HTTPConnection:
        if address is None and scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=self._timeout, context=_tls_context())
        if address is None:
            return http.client.HTTPConnection(host, port, timeout=self._timeout)
        if scheme == "https":
            return _PinnedHTTPSConnection(host, port, address, self._timeout, _tls_context())
        return _PinnedHTTPConnection(host, port, address, self._timeout)

    def mark_used(self, key: Key) -> None:
        self._used.add(key)

    def discard(self, key: Key) -> None:
        conn = self._open.pop(key, None)
        self._used.discard(key)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        for key in list(self._open):
            self.discard(key)

    def abort(self) -> None:
        self._aborted = True
        for conn in list(self._open.values()):
            sock = conn.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
