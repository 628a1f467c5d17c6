"""A real HTTP/1.1 server on 127.0.0.1 with named misbehaviours, for download tests.

Serve bytes at a path, then queue faults that hit the next requests for that path:

    server.serve("/w.bin", data)
    server.inject("/w.bin", "reset", after=100_000)           # body cut by a TCP reset
    server.inject("/w.bin", "status", code=503, retry_after=1)  # 503 + Retry-After
    server.inject("/w.bin", "short", by=4096)                  # Content-Length lies: body ends early
    server.inject("/w.bin", "stall", after=50_000)             # stops sending, keeps the socket open
    server.inject("/w.bin", "slow", rate=100)                  # this response trickles, 100 bytes/s

Any fault may also take `whole=True`: that response ignores the Range header (a 200 of the whole file).
Standing behaviours are options of `serve`: `ignore_range`, `corrupt` (wrong bytes), `rate` (bytes/s
per response, sent in pieces of a twentieth of a second's worth), `redirect` (302 elsewhere),
`require_token`, `no_length` (no Content-Length: the body ends when the connection closes), `headers`
(sent with every answer of the path, redirects included). HEAD is answered like GET, without the body.
Every request is recorded with its method, headers, status and the body bytes written, so tests can
count what the server sent. `FaultServer(host="127.0.0.2", port=...)` listens on another loopback
address. `tests/hubservers.py` builds a stand-in Hugging Face and its CDN from two of them.
"""

from __future__ import annotations

import re
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"bytes=(\d+)-(\d*)")
_PIECE = 16 << 10


@dataclass
class Route:
    data: bytes
    etag: str
    last_modified: str = "Wed, 01 Jan 2025 00:00:00 GMT"
    ignore_range: bool = False
    corrupt: bool = False
    rate: float | None = None
    redirect: str | None = None
    require_token: str | None = None
    no_length: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    faults: list[dict] = field(default_factory=list)


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    status: int = 0
    sent: int = 0
    at: float = 0.0
    client: tuple[str, int] = ("", 0)
    method: str = "GET"


class FaultServer:
    """Start with `with FaultServer() as server:`; `server.url(path)` is the URL of a served path."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, tls: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.routes: dict[str, Route] = {}
        self.requests: list[Seen] = []
        self.server_names: list[str | None] = []  # the TLS server name (SNI) of each handshake
        self._lock = threading.Condition()
        self._release = threading.Event()
        self._httpd = ThreadingHTTPServer((host, port), _make_handler(self))
        self.scheme = "https" if tls is not None else "http"
        if tls is not None:
            tls.sni_callback = lambda sock, name, context: self.server_names.append(name)
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return self.origin + path

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()  # let stalled responses end
        self._httpd.shutdown()
        self._httpd.server_close()

    def serve(self, path: str, data: bytes, *, etag: str | None = None, **options) -> Route:
        route = Route(data=data, etag=etag or f'"{hash(data) & 0xFFFFFFFF:08x}"', **options)
        self.routes[path] = route
        return route

    def inject(self, path: str, kind: str, *, times: int = 1, **params) -> None:
        """Queue `times` faults of `kind` for the next requests to `path` that reach it."""
        for _ in range(times):
            self.routes[path].faults.append({"kind": kind, **params})

    def seen(self, path: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.requests if s.path == path]

    def bytes_served(self, path: str | None = None) -> int:
        with self._lock:
            return sum(s.sent for s in self.requests if path is None or s.path == path)

    def wait_for_bytes(self, path: str, at_least: int, timeout: float) -> bool:
        """Block until the server has written `at_least` body bytes for `path` (False on timeout)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while sum(s.sent for s in self.requests if s.path == path) < at_least:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
        return True

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self.requests.append(seen)

    def _count(self, seen: Seen, n: int) -> None:
        with self._lock:
            seen.sent += n
            self._lock.notify_all()


def _make_handler(server: FaultServer) -> type[BaseHTTPRequestHandler]:
    return type("Handler", (_Handler,), {"fault_server": server})


class _Handler(BaseHTTPRequestHandler):
    """Serves `fault_server`'s routes, applying each route's next fault."""

    protocol_version = "HTTP/1.1"
    reset = False
    fault_server: FaultServer  # set on the subclass `_make_handler` makes

    def finish(self) -> None:
        super().finish()
        if self.reset:  # close before the server's graceful shutdown(SHUT_WR): the peer gets a RST
            self.connection.close()

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        server = self.fault_server
        headers = dict(self.headers.items())
        seen = Seen(self.path, headers, at=time.monotonic(), client=self.client_address, method=self.command)
        server._record(seen)
        route = server.routes.get(self.path)
        if route is None:
            return self._status(seen, 404)
        if route.require_token is not None and self.headers.get("Authorization") != (
            f"Bearer {route.require_token}"
        ):
            return self._status(seen, 401)
        if route.redirect is not None:
            return self._status(seen, 302, {"Location": route.redirect, **route.headers})
        fault = route.faults.pop(0) if route.faults else {}
        if fault.get("kind") == "status":
            headers = {"Retry-After": str(fault["retry_after"])} if "retry_after" in fault else {}
            return self._status(seen, fault["code"], headers)
        self._data(seen, route, fault)

    def _data(self, seen: Seen, route: Route, fault: dict) -> None:
        """The route's bytes, or the range asked of them, with its headers."""
        total = len(route.data)
        start, end = 0, total - 1
        match = _RANGE.fullmatch(self.headers.get("Range", ""))
        ranged = match is not None and not route.ignore_range and not fault.get("whole")
        if ranged and match is not None:
            start = int(match.group(1))
            end = min(int(match.group(2)) if match.group(2) else total - 1, total - 1)
            if start >= total:
                return self._status(seen, 416, {"Content-Range": f"bytes */{total}"})
        body = route.data[start : end + 1]
        if route.corrupt:
            body = bytes(b ^ 0xFF for b in body[:64]) + body[64:]
        seen.status = 206 if ranged else 200
        self.send_response(seen.status)
        if route.no_length:
            self.close_connection = True
            self.send_header("Connection", "close")
        else:
            self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", route.etag)
        self.send_header("Last-Modified", route.last_modified)
        self.send_header("Accept-Ranges", "none" if route.ignore_range else "bytes")
        if ranged:
            self.send_header("Content-Range", f"bytes {start}-{end}/{total}")
        for name, value in route.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self._body(seen, route, body, fault)

    def _body(self, seen: Seen, route: Route, body: bytes, fault: dict) -> None:
        kind = fault.get("kind")
        limit = len(body)
        if kind in ("reset", "stall"):
            limit = min(limit, fault["after"])
        elif kind == "short":
            limit = max(0, limit - fault["by"])
        rate = fault.get("rate", route.rate) if kind == "slow" else route.rate
        step = max(1, min(_PIECE, int(rate / 20))) if rate else _PIECE
        pos, began = 0, time.monotonic()
        try:
            while pos < limit:
                piece = body[pos : min(limit, pos + step)]
                self.wfile.write(piece)
                self.wfile.flush()
                pos += len(piece)
                self.fault_server._count(seen, len(piece))
                if rate:
                    ahead = pos / rate - (time.monotonic() - began)
                    if ahead > 0:
                        time.sleep(ahead)
            self.wfile.flush()
        except OSError:
            self.close_connection = True
            return
        if kind == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.reset = True
        elif kind == "short":
            self.close_connection = True
        elif kind == "stall":
            self.fault_server._release.wait(fault.get("seconds", 30))
            self.close_connection = True

    def _status(self, seen: Seen, code: int, headers: dict[str, str] | None = None) -> None:
        seen.status = code
        body = f"status {code}\n".encode()
        self.send_response(code)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
