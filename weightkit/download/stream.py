"""Reading one reply's body: the fetching half's stream, from the socket into a writer.

A `Stream` owns one reply of `open_range` until it is closed: the body, the kept-alive connection it
came on (kept only if the body was read to its end) and the connection slot it holds. Every read is
checked against the stall timeout (the socket's), the minimum rate (`rate.py`) and an optional
deadline, each failing as a `RetryableError` so the caller retries on a fresh connection.

`copy_into(writer, pos, want)` moves bytes to a writer (`PartFile`, or anything with `write` and
`splice`). A plain-HTTP body of known length goes through a pipe with `splice`, so its bytes never
enter this process: 0.44-0.57 CPU-s per GiB against 0.55-0.65 for `recv_into` + `pwrite` on the
development VM (`python -m bench download --parts`). HTTPS, chunked and close-delimited bodies are
read as they arrive (one socket read at a
time, so a trickle is seen and measured, where filling a whole block would block on it) and written
with `pwrite`.

A URL input can be fetched with the same parts: `open_range(conns, url, 0, None, credentials=(),
guard=guard)`, then `Stream(reply, conns, floor=..., deadline=...)` and `read(n)` until it returns
nothing, counting bytes against a limit.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import os
import select
import time
from typing import Protocol

from weightkit.download.control import Slot
from weightkit.download.httprange import Connections, Reply, RetryableError, SourceError, describe
from weightkit.download.rate import RateFloor

__all__ = ["BLOCK", "SPLICE_BLOCK", "Scratch", "Stream", "Writer"]

# Bytes per read and write when not splicing (HTTPS, chunked and length-less bodies): a reused size that
# stays in the CPU's cache.
BLOCK = 256 << 10
# Bytes per splice, the pipe's size (Linux's default limit for one): they never enter this process, and
# 1 MiB moves cost 0.44-0.57 CPU-s per GiB against 0.51-0.69 for 256 KiB (`--parts`, docs/DOWNLOAD.md).
SPLICE_BLOCK = 1 << 20
_F_SETPIPE_SZ = 1031
_CAN_SPLICE = hasattr(os, "splice")


class Writer(Protocol):
    """Where a stream's bytes go: positional writes from memory or from a pipe."""

    def write(self, data: memoryview, pos: int) -> None: ...

    def splice(self, pipe: int, count: int, pos: int) -> None: ...


class Scratch:
    """One thread's reusable pipe (made on first use); close it when the thread ends."""

    def __init__(self) -> None:
        self._pipe: tuple[int, int] | None = None

    def pipe(self) -> tuple[int, int]:
        if self._pipe is None:
            read, write = os.pipe2(os.O_CLOEXEC)
            with contextlib.suppress(OSError):  # else the default 64 KiB: smaller moves, same bytes
                fcntl.fcntl(write, _F_SETPIPE_SZ, SPLICE_BLOCK)
            self._pipe = (read, write)
        return self._pipe

    def close(self) -> None:
        if self._pipe is not None:
            for fd in self._pipe:
                os.close(fd)
            self._pipe = None


class Stream:
    """The body of `reply`, read by one thread. Close it (or use `with`) to give back its slot."""

    def __init__(
        self,
        reply: Reply,
        conns: Connections,
        slot: Slot | None = None,
        *,
        floor: RateFloor | None = None,
        deadline: float | None = None,
        stall_timeout: float = 30.0,
    ) -> None:
        self.reply = reply
        self._conns = conns
        self._slot = slot
        self._watch = floor.watch(started=time.monotonic()) if floor is not None and floor.enabled else None
        self._deadline = deadline
        self._stall = stall_timeout
        # Bytes of the body still to come, when this stream splices it: plain HTTP, a Content-Length,
        # no chunked framing (the socket's bytes are then exactly the body's).
        body = reply.body
        plain = _CAN_SPLICE and reply.key[0] == "http" and not body.chunked and bool(body.length)
        self._left = body.length if plain else None
        self._drained = False

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def framed(self) -> bool:
        return self.reply.framed

    @property
    def block(self) -> int:
        """The most `copy_into` moves at once."""
        return SPLICE_BLOCK if self._left is not None else BLOCK

    def read(self, count: int) -> bytes:
        """Up to `count` bytes, as soon as any arrived (one read of the socket); empty at the end of the
        body. Raises `RetryableError` when the connection fails, stalls, falls below the minimum rate
        or closes before a stated length, and `SourceError` past the deadline. (A body without a
        stated length also ends empty when the connection is cut: `framed` says which it was.)"""
        if self._left is not None:
            if self._drained:
                raise RuntimeError("read() on a stream that splices")
            self._left = None  # nothing read yet: http.client reads this one
        self._check()
        try:
            data = self.reply.body.read1(count)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise RetryableError(describe(exc)) from exc
        if not data and self.reply.body.length:  # http.client leaves what was still to come
            raise RetryableError(f"connection closed with {self.reply.body.length} bytes of the body to come")
        self._feed(len(data))
        return data

    def skip(self, count: int) -> None:
        """Read and drop `count` bytes (a 200 restarts at byte 0: past what is on disk)."""
        while count:
            data = self.read(min(BLOCK, count))
            if not data:
                raise RetryableError("connection closed before the bytes already on disk were skipped")
            count -= len(data)

    def copy_into(self, writer: Writer, pos: int, want: int, scratch: Scratch) -> int:
        """Move up to `want` bytes of the body to `writer` at `pos`; returns how many (0: the body
        ended, or the connection closed). Raises like `read`, and the writer's `OSError`."""
        if self._left is None:
            data = self.read(min(want, BLOCK))
            if data:
                writer.write(memoryview(data), pos)
            return len(data)
        self._check()
        if not self._drained:
            return self._drain(writer, pos, want)
        if self._left == 0:
            return 0
        read, write = scratch.pipe()
        n = self._splice_in(write, min(want, self._left, SPLICE_BLOCK))
        try:
            writer.splice(read, n, pos)
        except BaseException:
            scratch.close()  # the pipe may still hold some of them: never let them reach another write
            raise
        self._left -= n
        if self._left == 0:
            self.reply.body.close()  # read to its end: the connection carries the next request
        self._feed(n)
        return n

    def close(self) -> None:
        """Keep the connection if the body was read to its end; give back the slot."""
        body = self.reply.body
        if not body.isclosed():
            self._conns.discard(self.reply.key)
            body.close()
        if self._slot is not None:
            self._slot.release()
            self._slot = None

    def _drain(self, writer: Writer, pos: int, want: int) -> int:
        """Before splicing: the body bytes http.client already buffered, from its buffer."""
        self._drained = True
        assert self._left is not None
        try:
            buffered = self.reply.body.fp.peek(1)[: min(want, self._left)]
            data = self.reply.body.fp.read(len(buffered))
        except (OSError, ValueError) as exc:
            raise RetryableError(describe(exc)) from exc
        if not data:
            raise RetryableError(f"connection closed with {self._left} bytes of the body to come")
        writer.write(memoryview(data), pos)
        self._left -= len(data)
        if self._left == 0:
            self.reply.body.close()
        self._feed(len(data))
        return len(data)

    def _splice_in(self, pipe: int, count: int) -> int:
        """Socket → pipe, waiting for bytes up to the stall timeout."""
        fd = self.reply.body.fp.fileno()
        while True:
            try:
                n = os.splice(fd, pipe, count, flags=os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK)
            except BlockingIOError:
                n = -1
            except OSError as exc:
                raise RetryableError(describe(exc)) from exc
            if n > 0:
                return n
            if n == 0:
                raise RetryableError(f"connection closed with {self._left} bytes of the body to come")
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            if not poller.poll(self._stall * 1000):
                raise RetryableError(describe(TimeoutError()))

    def _feed(self, n: int) -> None:
        """Count `n` bytes that arrived (and were written): the next read says if that was too slow."""
        if self._watch is not None:
            self._watch = self._watch.fed(n, time.monotonic())

    def _check(self) -> None:
        """Before a read: raise if the last window fell below the minimum rate, or past the deadline."""
        if self._watch is not None and self._watch.slow:
            raise RetryableError(f"slower than the minimum rate ({self._watch.floor.describe()})")
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise SourceError("the download took longer than its deadline")
