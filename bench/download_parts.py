"""The evidence for the downloader's inner choices, one part at a time in this process (one thread):

- transport: one stream read into memory by `http.client` (`readinto` a reused buffer) and urllib3;
- into the file: `recv_into` + `pwrite` against `splice` socket → pipe → file, 256 KiB or 1 MiB at a
  time (`stream.py`);
- hashing what was written: sha256 of memory alone (the floor), of `pread` copies, of a mapping of
  the page cache (`hasher.py`).

Each prints MB/s and CPU seconds per GiB (user + system of this process). Run by
`python -m bench download --parts`, against the same nginx, after the same warm-up.
"""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import mmap
import os
import resource
import socket
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["measure_parts"]

BLOCK = 256 << 10
_F_SETPIPE_SZ = 1031


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed(size: int, work: Callable[[], None]) -> tuple[float, float]:
    """MB/s and CPU-s per GiB of `work()`, which handles `size` bytes."""
    cpu, started = _cpu(), time.perf_counter()
    work()
    seconds, used = time.perf_counter() - started, _cpu() - cpu
    return size / seconds / 1e6, used / (size / 2**30)


def _open(url: str) -> http.client.HTTPResponse:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)
    conn.request("GET", parts.path)
    return conn.getresponse()


def _into_memory(url: str) -> None:
    response = _open(url)
    view = memoryview(bytearray(BLOCK))
    while response.readinto(view):
        pass


def _urllib3(url: str) -> None:
    import urllib3

    streamed = urllib3.PoolManager().request("GET", url, preload_content=False)
    for _ in streamed.stream(BLOCK):
        pass
    streamed.release_conn()


def _recv_pwrite(url: str, path: Path, size: int) -> None:
    sock, rest = _raw_get(url)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    os.posix_fallocate(fd, 0, size)
    pos = os.pwrite(fd, rest, 0)
    view = memoryview(bytearray(BLOCK))
    while pos < size:
        n = sock.recv_into(view, min(BLOCK, size - pos))
        os.pwrite(fd, view[:n], pos)
        pos += n
    os.fsync(fd)
    os.close(fd)
    sock.close()


def _splice(url: str, path: Path, size: int, block: int) -> None:
    sock, rest = _raw_get(url)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    os.posix_fallocate(fd, 0, size)
    pos = os.pwrite(fd, rest, 0)
    read, write = os.pipe()
    fcntl.fcntl(write, _F_SETPIPE_SZ, block)
    while pos < size:
        n = os.splice(sock.fileno(), write, min(block, size - pos))
        while n:
            moved = os.splice(read, fd, n, offset_dst=pos)
            pos, n = pos + moved, n - moved
    os.fsync(fd)
    for descriptor in (fd, read, write):
        os.close(descriptor)
    sock.close()


def _raw_get(url: str) -> tuple[socket.socket, bytes]:
    """A GET on a plain socket; the socket after the headers and the body bytes read with them."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80))
    sock.sendall(f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    return sock, head.partition(b"\r\n\r\n")[2]


def _hash_memory(size: int) -> None:
    digest, block = hashlib.sha256(), memoryview(os.urandom(BLOCK))
    for _ in range(size // BLOCK):
        digest.update(block)


def _hash_pread(path: Path, size: int) -> None:
    fd = os.open(path, os.O_RDONLY)
    digest, view = hashlib.sha256(), memoryview(bytearray(BLOCK))
    for pos in range(0, size, BLOCK):
        n = os.preadv(fd, [view], pos)
        digest.update(view[:n])
    os.close(fd)


def _hash_mmap(path: Path, size: int, window: int = 4 << 20) -> None:
    fd = os.open(path, os.O_RDONLY)
    digest = hashlib.sha256()
    for pos in range(0, size, window):
        length = min(window, size - pos)
        with mmap.mmap(fd, length, prot=mmap.PROT_READ, offset=pos) as mapped, memoryview(mapped) as view:
            digest.update(view)
    os.close(fd)


def measure_parts(
    url: str, size: int, scratch: Path, warm: Callable[[], None]
) -> list[tuple[str, float, float]]:
    """(part, MB/s, CPU-s/GiB) for each part, `url` serving `size` bytes at full speed."""
    out = scratch / "parts.bin"
    parts: list[tuple[str, Callable[[], None]]] = [
        ("stream into memory: http.client readinto", lambda: _into_memory(url)),
        ("stream into memory: urllib3", lambda: _urllib3(url)),
        ("stream into a file: recv_into + pwrite", lambda: _recv_pwrite(url, out, size)),
        ("stream into a file: splice 256 KiB", lambda: _splice(url, out, size, 256 << 10)),
        ("stream into a file: splice 1 MiB", lambda: _splice(url, out, size, 1 << 20)),
        ("sha256 of memory (the floor)", lambda: _hash_memory(size)),
        ("sha256 of the file: pread", lambda: _hash_pread(out, size)),
        ("sha256 of the file: mmap 4 MiB", lambda: _hash_mmap(out, size)),
    ]
    results = []
    for name, work in parts:
        if name.startswith("stream into a file"):
            out.unlink(missing_ok=True)
            warm()
        try:
            rate, cpu = _timed(size, work)
        except ImportError:
            continue
        results.append((name, rate, cpu))
    out.unlink(missing_ok=True)
    return results
