"""The evidence for the downloader's inner choices, one part at a time in this process (one thread):

- transport: one stream read into memory by `http.client` (`readinto` a reused buffer) and urllib3;
- into the file: `recv_into` + `pwrite` against `splice` socket → pipe → file, 256 KiB or 1 MiB at a
  time (`stream.py`);
- hashing what was written: sha256 of memory alone (the floor), of `pread` copies, of a mapping of
  the page cache (`hasher.py`);
- for comparison, a design the downloader does not use yet: one stream hashed from memory and written
  with `O_DIRECT` by a pipeline of threads (verification included).

Each prints MB/s and CPU seconds per GiB (user + system of this process; the pipeline's threads too). Run by
`python -m bench download --parts`, against the same nginx, after the same warm-up.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import http.client
import mmap
import os
import queue
import resource
import socket
import threading
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


class _Unsupported(Exception):
    """This machine cannot run the part."""


def _pipeline(url: str, path: Path, size: int, sha256: str, block: int = 2 << 20, buffers: int = 6) -> None:
    """A way the downloader does not work yet, timed for comparison: one in-order stream read into a
    few page-aligned buffers, hashed from memory by one thread and written with `O_DIRECT` by two (no
    page cache, so no second copy and no hashing from it). Verification included, as in ours."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o644)
    except OSError as exc:  # a filesystem without O_DIRECT (tmpfs): nothing to compare
        if exc.errno == errno.EINVAL:
            raise _Unsupported from exc
        raise
    response = _open(url)
    os.posix_fallocate(fd, 0, size)
    free: queue.Queue[mmap.mmap] = queue.Queue()
    for _ in range(buffers):
        free.put(mmap.mmap(-1, block))
    to_hash: queue.Queue[tuple[mmap.mmap, int, int] | None] = queue.Queue()
    to_write: queue.Queue[tuple[mmap.mmap, int, int] | None] = queue.Queue()
    digest = hashlib.sha256()
    threads = [threading.Thread(target=_hash_stage, args=(to_hash, to_write, digest, 2))]
    threads += [threading.Thread(target=_write_stage, args=(to_write, free, fd)) for _ in range(2)]
    for thread in threads:
        thread.start()
    pos = 0
    while True:
        buffer = free.get(timeout=60)  # a stage that died shows as an error, not a hang
        with memoryview(buffer) as view:
            n = _fill(response, view)
        if not n:
            break
        to_hash.put((buffer, n, pos))
        pos += n
    to_hash.put(None)
    for thread in threads:
        thread.join()
    os.fdatasync(fd)
    os.close(fd)
    if digest.hexdigest() != sha256:
        raise RuntimeError(f"the O_DIRECT pipeline hashed {digest.hexdigest()}, the file is {sha256}")


def _fill(response: http.client.HTTPResponse, view: memoryview) -> int:
    got = 0
    while got < len(view) and (n := response.readinto(view[got:])):
        got += n
    return got


def _hash_stage(source: queue.Queue, sink: queue.Queue, digest: hashlib._Hash, writers: int) -> None:
    while (item := source.get()) is not None:
        with memoryview(item[0])[: item[1]] as view:
            digest.update(view)
        sink.put(item)
    for _ in range(writers):
        sink.put(None)


def _write_stage(source: queue.Queue, free: queue.Queue, fd: int) -> None:
    while (item := source.get()) is not None:
        buffer, n, pos = item
        if n % 4096:  # O_DIRECT writes whole blocks: the file's unaligned tail goes through the cache
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_DIRECT)
        with memoryview(buffer)[:n] as view:
            os.pwrite(fd, view, pos)
        free.put(buffer)


def measure_parts(
    url: str, size: int, sha256: str, scratch: Path, warm: Callable[[], None]
) -> list[tuple[str, float, float]]:
    """(part, MB/s, CPU-s/GiB) for each part, `url` serving `size` bytes of sha256 `sha256` at full speed."""
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
        ("stream into a file, hashed: O_DIRECT pipeline", lambda: _pipeline(url, out, size, sha256)),
    ]
    results = []
    for name, work in parts:
        if name.startswith("stream into a file"):
            out.unlink(missing_ok=True)
            warm()
        try:
            rate, cpu = _timed(size, work)
        except (ImportError, _Unsupported):
            continue
        results.append((name, rate, cpu))
    out.unlink(missing_ok=True)
    return results
