"""The threads that fetch one file's chunks, each over kept-alive connections of its own.

A worker takes the next missing chunk, asks the source for it (`source.py`) and copies the reply into
the part file (`stream.py` → `partfile.py`). A failed attempt is retried after a pause (`Retry-After`
when the server said, else exponential backoff with jitter) from the last byte written; an attempt
that delivered 1 MiB or more was progress, so the chunk's retry count starts again. Out of retries,
the source has failed: the first error stops every worker of the file. How many work at once follows
`width.py`, fed the measured throughput by the coordinator (`transfer.py`); a worker beyond the
target retires after its chunk. A worker that finds no chunk left takes the second half of the largest
one still in flight, so the last chunks do not leave connections idle while one finishes alone; the
worker that had it stops at the half and drops its connection (the rest of that reply is not read).

A body whose end only the connection closing marked (no length, not chunked) is not taken as
complete: the worker asks for the range after its last byte. A 416 confirms the size, a 206 gives it
and the rest of the file, and a server that can say neither fails the source, since a cut connection
and a complete file look alike.
"""

from __future__ import annotations

import collections
import logging
import threading

from weightkit.download.chunks import Chunk
from weightkit.download.control import Slots, Stop, Stopped
from weightkit.download.httprange import Connections, RangeNotSatisfiable, RetryableError, SourceError
from weightkit.download.partfile import PartFile
from weightkit.download.retry import backoff_delay
from weightkit.download.source import Source
from weightkit.download.stream import SPLICE_BLOCK, Scratch, Stream
from weightkit.download.width import ConnectionWidth
from weightkit.settings import DownloadSettings

__all__ = ["Workers", "pause"]

log = logging.getLogger(__name__)

# An attempt that delivered this much is progress: the chunk's retry count starts again.
PROGRESS_RESETS_RETRIES = 1 << 20
# A chunk in flight is split only if each half keeps at least this much: more than one splice (the most
# a worker writes between two looks at its chunk's end), so the worker that has it cannot write past the
# new end before it sees it.
MIN_SPLIT = SPLICE_BLOCK + (64 << 10)


class _Unconfirmed(RetryableError):
    """The connection closed a body of unstated length: ask again after its last byte to confirm."""


class Workers:
    """The worker threads of one file. `error` is the first failure; it sets `stop`."""

    def __init__(
        self,
        *,
        source: Source,
        part: PartFile,
        chunks: list[Chunk],
        pending: collections.deque[Chunk],
        settings: DownloadSettings,
        slots: Slots,
        stop: Stop,
        label: str,
    ) -> None:
        self._source = source
        self._part = part
        self._chunks = chunks
        self._pending = pending
        self._in_flight: set[Chunk] = set()
        self._ranged = False
        self._settings = settings
        self._slots = slots
        self._stop = stop
        self._label = label
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._active = 0  # workers counted against the width (a retiring one leaves it at once)
        self._live = 0  # worker threads not yet at their end
        self._closed = False
        self._width = ConnectionWidth(limit=settings.connections_per_file)
        self.error: BaseException | None = None
        self.progress = threading.Event()  # set when a chunk completes (checkpoint now), or as `ended`
        self.ended = threading.Event()  # set when the last worker is gone, or on the stop
        stop.on_set(self._wake)

    def _wake(self) -> None:
        self.ended.set()
        self.progress.set()

    def start(self, first: tuple[Chunk, Stream, Connections] | None, *, ranged: bool) -> None:
        """The first worker streams the first reply; a ranged download starts `width.target` in all."""
        self._ranged = ranged
        if first is not None:
            self._in_flight.add(first[0])
            self._spawn(first)
        if ranged:
            self._add(self._width.target - (first is not None))

    def running(self) -> bool:
        with self._lock:
            return self._live > 0

    def join(self) -> None:
        """Wait for every worker; then no more are added."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        for thread in threads:
            thread.join()

    def adjust(self, rate: float, *, ranged: bool) -> None:
        """Feed one window's throughput (bytes/s) to the width; open or retire workers as it says."""
        with self._lock:
            active = self._active
        if not ranged or not self._width.observe(rate, active):
            return
        if self._width.target > active:
            added = self._add(self._width.target - active)
            message = "%s: %d connections at %.0f MB/s each, opening %d more"
            log.info(message, self._label, active, rate / max(1, active) / 1e6, added)
        else:
            message = "%s: more connections did not help (%.0f MB/s); back to %d"
            log.info(message, self._label, rate / 1e6, self._width.target)

    # -- one worker ------------------------------------------------------------------------------------

    def _add(self, count: int) -> int:
        with self._lock:
            room = len(self._pending)
            if self._ranged:  # chunks in flight can be split for more workers
                room += sum(((c.end or c.pos) - c.pos) // (2 * MIN_SPLIT) for c in self._in_flight)
        count = min(count, room)
        for _ in range(count):
            self._spawn(None)
        return count

    def _spawn(self, first: tuple[Chunk, Stream, Connections] | None) -> None:
        with self._lock:
            if self._closed:
                return
            thread = threading.Thread(target=self._work, args=(first,), name="weightkit-fetch", daemon=True)
            self._threads.append(thread)
            self._active += 1
            self._live += 1
        thread.start()

    def _work(self, first: tuple[Chunk, Stream, Connections] | None) -> None:
        chunk, stream, conns = first if first is not None else (None, None, self._source.connections())
        self._stop.on_set(conns.abort)
        scratch = Scratch()
        retired = False
        try:
            if chunk is not None:
                self._fetch(chunk, conns, scratch, stream)
            while True:
                with self._lock:
                    if self._active > self._width.target:  # one too many: retire now
                        self._active -= 1
                        retired = True
                        return
                    chunk = self._pending.popleft() if self._pending else self._split()
                    if chunk is not None:
                        self._in_flight.add(chunk)
                if chunk is None:
                    return
                self._fetch(chunk, conns, scratch)
        except Stopped:
            pass
        except BaseException as exc:
            self.fail(exc)
        finally:
            if stream is not None:
                stream.close()  # unread if the stop came first; closing twice is harmless
            scratch.close()
            conns.close()
            with self._lock:
                self._active -= 0 if retired else 1
                self._live -= 1
                last = self._live == 0
            if last:
                self._wake()

    def _split(self) -> Chunk | None:
        """The second half of the chunk in flight with most left to fetch, as a chunk of its own
        (called under the lock); None when none is worth splitting."""
        if not self._ranged:
            return None
        best, most = None, 2 * MIN_SPLIT - 1
        for chunk in self._in_flight:
            left = (chunk.end or 0) - chunk.pos
            if chunk.end is not None and left > most:
                best, most = chunk, left
        if best is None or best.end is None:
            return None
        half = best.pos + most // 2
        piece = Chunk(half, best.end)
        # The piece goes in before `best` is cut short: the hasher reads the chunks without this lock,
        # and a cut `best` that completes with no piece after it would put [half, old end) behind the
        # gap-free front, unwritten (`frontier`).
        self._chunks.insert(self._chunks.index(best) + 1, piece)
        best.end = half
        return piece

    def fail(self, exc: BaseException) -> None:
        """Record the first failure and stop every worker."""
        with self._lock:
            if self.error is None:
                self.error = exc
        self._stop.set()

    def _fetch(
        self, chunk: Chunk, conns: Connections, scratch: Scratch, stream: Stream | None = None
    ) -> None:
        """Fill `chunk`, retrying with backoff; raises `SourceError` when out of retries."""
        failures = 0
        while not chunk.complete:
            before = chunk.done
            try:
                self._attempt(chunk, conns, scratch, stream)
            except _Unconfirmed:
                pass  # not a failure: the next attempt is the probe
            except RetryableError as exc:
                failures = 1 if chunk.done - before >= PROGRESS_RESETS_RETRIES else failures + 1
                pause(exc, failures, settings=self._settings, stop=self._stop, label=self._label)
            stream = None
            self._stop.check()
        with self._lock:
            self._in_flight.discard(chunk)
        self._part.flush_range(chunk.start, chunk.pos)
        self.progress.set()

    def _attempt(self, chunk: Chunk, conns: Connections, scratch: Scratch, stream: Stream | None) -> None:
        if stream is None:
            end = None if chunk.end is None else chunk.end - 1
            try:
                stream = self._source.open(conns, chunk.pos, end, slots=self._slots, stop=self._stop)
            except RangeNotSatisfiable as exc:
                if chunk.end is not None or exc.total not in (None, chunk.pos):
                    raise
                chunk.end = chunk.pos  # nothing past our last byte: the size is confirmed
                return
        with stream:
            self._fill(chunk, stream, scratch)

    def _fill(self, chunk: Chunk, stream: Stream, scratch: Scratch) -> None:
        """Copy `stream` into the part file at `chunk`'s position until the chunk is complete."""
        reply = stream.reply
        if chunk.end is None and reply.ranged and reply.total is not None:
            chunk.end = reply.total  # a probe after a body of unstated length: now the size is known
        skip = chunk.pos - reply.start  # a 200 restarts at byte 0: read past what is on disk
        if skip < 0:
            raise RetryableError(f"the server answered from byte {reply.start}, wanted {chunk.pos}")
        if skip and chunk.end is None and not reply.framed:
            raise SourceError(
                f"the server sent {chunk.pos} bytes without saying the file's size, and answers a range "
                "request with the whole file again, so the size cannot be confirmed: the file may be "
                "truncated"
            )
        if skip:
            stream.skip(skip)
        block = stream.block
        while not self._stop.is_set():
            end = chunk.end
            want = block if end is None else min(block, end - chunk.pos)
            if want <= 0:
                return
            n = stream.copy_into(self._part, chunk.pos, want, scratch)
            if n:
                chunk.done += n
            elif end is not None:
                raise RetryableError(f"connection closed at byte {chunk.pos} of {end} (short body)")
            elif stream.framed:
                chunk.end = chunk.pos  # the body's end is the file's end
            else:
                raise _Unconfirmed(f"the connection closed at byte {chunk.pos}; confirming the size")


def pause(exc: RetryableError, failures: int, *, settings: DownloadSettings, stop: Stop, label: str) -> None:
    """Wait before retry number `failures` after `exc`: `Retry-After` when the server said, else
    backoff. Raises `SourceError` when out of retries or asked to wait too long, `Stopped` if `stop`
    is set meanwhile."""
    retries = settings.retries
    if failures > retries:
        raise SourceError(f"{exc.reason} (gave up after {retries} retries)") from exc
    if exc.retry_after is not None:
        if exc.retry_after > settings.max_retry_after:
            raise SourceError(
                f"{exc.reason}, asked to retry after {exc.retry_after:.0f} s (more than "
                f"WEIGHTS_MAX_RETRY_AFTER={settings.max_retry_after:g})"
            ) from exc
        delay = exc.retry_after
    else:
        delay = backoff_delay(failures, base=settings.backoff, cap=settings.backoff_max)
    log.info("%s: %s; retry %d of %d in %.1f s", label, exc.reason, failures, retries, delay)
    if stop.wait(delay):
        raise Stopped
