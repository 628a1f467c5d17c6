"""One file from one source into its part file: parallel range requests, or one stream when the server
ignores ranges.

The first request asks for the first missing chunk; its answer says everything needed to plan: a 206
gives the file's size (`Content-Range`) and validators, a 200 means the server ignores ranges and the
body is the whole file. Worker threads then fetch chunks over kept-alive connections, each reading into
one reused buffer and writing with `pwrite` at the chunk's offset. A monitor thread checkpoints the
resume state when a chunk completes and twice a second, reports progress and opens more connections
when they prove slow. A flusher thread starts the disk writing each finished chunk at once and makes
the written bytes durable with `fdatasync` every few seconds (see `partfile.py`); both can block on
the disk, which must not hold up checkpoints.
"""

from __future__ import annotations

import collections
import http.client
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from weightkit.download.chunks import Chunk, done_ranges, plan_chunks
from weightkit.download.hasher import OrderedHasher
from weightkit.download.httprange import (
    Connections,
    Reply,
    RetryableError,
    SourceError,
    describe,
    open_range,
)
from weightkit.download.partfile import PartFile, ResumeState
from weightkit.download.retry import backoff_delay
from weightkit.download.urls import display_url
from weightkit.download.width import ConnectionWidth
from weightkit.settings import DownloadSettings

__all__ = ["Cancelled", "Outcome", "Report", "Transfer"]

log = logging.getLogger(__name__)

# Bytes per read and write: 64-256 KiB cost a fraction of the CPU of 1 MiB+ blocks on these VMs and stay
# in cache; `python -m bench download` measured 256 KiB best (docs/DOWNLOAD.md).
BLOCK = 256 << 10
CHECKPOINT_SECONDS = 0.5
# fdatasync this often while downloading: keeps the final fsync short and bounds what a crash loses;
# doing it at every checkpoint cost more CPU in writeback than the download (bench, docs/DOWNLOAD.md).
DURABLE_SECONDS = 5.0
# Throughput is measured over windows this long to decide how many connections to use (`width.py`).
WIDTH_WINDOW = 0.15
# An attempt that delivered this much is progress: the chunk's retry count starts again.
PROGRESS_RESETS_RETRIES = 1 << 20


class Cancelled(Exception):
    """The caller stopped the download; the part file and its state are kept for a resume."""


class _Stopped(Exception):
    """Internal: this worker stops because another failed or the caller cancelled."""


@dataclass(frozen=True)
class Outcome:
    """A completed transfer: every byte of `size` is in the part file."""

    url: str
    size: int
    sha256: str | None
    resumed: int
    fetched: int


Report = Callable[[int, "int | None"], None]


class Transfer:
    """Downloads `url` into `part`. `run()` returns an `Outcome` or raises `SourceError` (this source
    failed; the part keeps what arrived), `Cancelled`, or an `OSError` of the local disk."""

    def __init__(
        self,
        *,
        url: str,
        part: PartFile,
        expected_size: int | None,
        hash_content: bool,
        resume_any_source: bool,
        settings: DownloadSettings,
        budget: threading.Semaphore,
        cancel: threading.Event,
        report: Report | None = None,
        label: str = "",
        url_guard: Callable[[str], object] | None = None,
    ) -> None:
        self._url = url
        self._url_guard = url_guard
        self._resolved = url
        self._part = part
        self._expected_size = expected_size
        self._hash_content = hash_content
        self._resume_any_source = resume_any_source
        self._settings = settings
        self._budget = budget
        self._cancel = cancel
        self._report = report
        self._label = label or part.dest.name
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        # Writers to one file queue on this lock rather than spin in the kernel on the inode's lock,
        # which burned more CPU than the copies themselves (perf: rwsem_spin_on_owner).
        self._write_lock = threading.Lock()
        self._error: BaseException | None = None
        self._connections: list[Connections] = []
        self._chunks: list[Chunk] = []
        self._pending: collections.deque[Chunk] = collections.deque()
        self._state: ResumeState | None = None
        self._total: int | None = None
        self._ranged = True
        self._finished = False
        self._flush_wake = threading.Event()
        self._workers: list[threading.Thread] = []
        self._no_more_workers = False
        self._active = 0
        self._width = ConnectionWidth(limit=settings.connections_per_file)

    # -- the run -------------------------------------------------------------------------------------

    def run(self) -> Outcome:
        conns = self._new_connections()
        resumed = self._part.state
        reply: Reply | None = self._open_first(conns, _first_gap(resumed))
        try:
            self._size_of(reply)
            keep = resumed is not None and reply.ranged and self._can_resume(resumed, reply)
            if resumed is not None and resumed.done and not keep:
                why = "the server ignores ranges" if not reply.ranged else "the remote file changed"
                log.info("%s: %s; starting over", self._label, why)
            if not keep and reply.start != 0:  # asked to resume mid-file, but the bytes on disk are no use
                self._drop(conns, reply)
                reply = None
                reply = self._open_first(conns, 0)
            total = self._size_of(reply)
            self._ranged = reply.ranged
            if not reply.ranged:
                chunks = [Chunk(0, total)]
            else:
                done = resumed.done if keep and resumed is not None else ()
                chunks = plan_chunks(total or 0, done, self._settings.chunk_size)
            self._part.open(total, fresh=not keep, margin=self._settings.min_free_bytes)
        except BaseException:
            if reply is not None:
                self._drop(conns, reply)
            conns.close()
            raise
        self._total = total
        self._chunks = chunks
        first = next((c for c in chunks if not c.complete and c.start == reply.start), None)
        self._pending.extend(c for c in chunks if not c.complete and c is not first)
        resumed_bytes = sum(c.done for c in chunks)
        self._state = ResumeState(
            url=display_url(self._url),
            size=total,
            etag=reply.etag,
            last_modified=reply.last_modified,
            done=tuple(done_ranges(chunks)),
        )
        self._checkpoint()
        self._log_start(reply, resumed_bytes)
        if self._report is not None:
            self._report(resumed_bytes, total)
        fd = self._part.fd
        assert fd is not None
        hasher = OrderedHasher(fd, chunks) if self._hash_content else None
        if hasher is not None:
            hasher.start()
        monitor = threading.Thread(target=self._monitor, name="weightkit-monitor", daemon=True)
        flusher = threading.Thread(target=self._flusher, name="weightkit-flush", daemon=True)
        monitor.start()
        flusher.start()
        completed = False
        try:
            self._start_workers(conns, first, reply)
            self._join_workers()
            completed = self._error is None and not self._cancel.is_set()
        finally:
            self._halt()
            self._join_workers()
            self._finished = True
            self._wake.set()
            self._flush_wake.set()
            monitor.join()
            flusher.join()
            self._part.sync(tuple(done_ranges(chunks)))
            self._checkpoint()
            if hasher is not None and not completed:
                hasher.stop()
        if self._error is not None:
            raise self._error
        if not completed:
            raise Cancelled(self._label)
        if not all(chunk.complete for chunk in chunks):  # every worker gone with work left: a bug
            raise SourceError("the download stopped before its end")
        size = chunks[-1].pos if chunks else 0
        digest = hasher.finish(size) if hasher is not None else None
        if self._report is not None:
            self._report(size, size)
        return Outcome(
            url=display_url(self._url),
            size=size,
            sha256=digest,
            resumed=resumed_bytes,
            fetched=size - resumed_bytes,
        )

    def _size_of(self, reply: Reply) -> int | None:
        """The file's size as this reply tells it; raises `SourceError` if it contradicts the manifest."""
        if reply.ranged and reply.total is None:
            raise SourceError("the server did not say the file's size (Content-Range total '*')")
        total = reply.total if reply.ranged else reply.length
        if self._expected_size is not None and total is not None and total != self._expected_size:
            raise SourceError(f"the server's file has {total} bytes, the manifest says {self._expected_size}")
        return total

    def _can_resume(self, state: ResumeState, reply: Reply) -> bool:
        """Same size, and validators that agree (or a sha256 that will catch any difference)."""
        if state.size != reply.total:
            return False
        if state.url != display_url(self._url):
            return self._resume_any_source
        pairs = [(state.etag, reply.etag), (state.last_modified, reply.last_modified)]
        compared = [(old, new) for old, new in pairs if old and new]
        if any(old != new for old, new in compared):
            return False
        return bool(compared) or self._resume_any_source

    def _log_start(self, reply: Reply, resumed_bytes: int) -> None:
        mode = "ranged" if reply.ranged else "single stream (server ignores ranges)"
        resumed = f", resuming at {resumed_bytes} bytes" if resumed_bytes else ""
        log.info(
            "Fetching %s from %s: %s bytes, %s%s",
            self._label,
            display_url(self._url),
            "unknown" if self._total is None else self._total,
            mode,
            resumed,
        )

    # -- workers -------------------------------------------------------------------------------------

    def _start_workers(self, conns: Connections, first: Chunk | None, reply: Reply) -> None:
        """The first worker streams the first reply; a ranged download starts `width.target` workers in
        all, and the monitor adds or retires workers as the measured throughput suggests."""
        if first is None:  # everything was on disk already
            self._drop(conns, reply)
            conns.close()
            return
        self._spawn(conns, first, reply)
        if reply.ranged:
            self._add_workers(self._width.target - 1)

    def _add_workers(self, count: int) -> int:
        count = min(count, len(self._pending))
        for _ in range(count):
            self._spawn()
        return count

    def _spawn(self, *args: object) -> None:
        with self._lock:
            if self._no_more_workers:
                return
            worker = threading.Thread(target=self._work, args=args, name="weightkit-fetch", daemon=True)
            self._workers.append(worker)
            self._active += 1
        worker.start()

    def _join_workers(self) -> None:
        """Join every worker, including any the monitor adds meanwhile; then no more are added."""
        joined = 0
        while True:
            with self._lock:
                batch = self._workers[joined:]
                if not batch:
                    self._no_more_workers = True
                    return
            for worker in batch:
                worker.join()
            joined += len(batch)

    def _adjust_width(self, rate: float) -> None:
        with self._lock:
            active = self._active
        if not self._ranged or not self._width.observe(rate, active):
            return
        if self._width.target > active:
            added = self._add_workers(self._width.target - active)
            message = "%s: %d connections at %.0f MB/s each, opening %d more"
            log.info(message, self._label, active, rate / active / 1e6, added)
        else:
            message = "%s: more connections did not help (%.0f MB/s); back to %d"
            log.info(message, self._label, rate / 1e6, self._width.target)

    def _work(self, conns: Connections | None = None, first: Chunk | None = None, reply: Reply | None = None):
        conns = conns or self._new_connections()
        view = memoryview(bytearray(BLOCK))
        retired = False
        try:
            if first is not None:
                self._fetch(first, conns, view, reply)
            while True:
                with self._lock:
                    if self._active > self._width.target:  # one too many: retire now
                        self._active -= 1
                        retired = True
                        return
                    chunk = self._pending.popleft() if self._pending else None
                if chunk is None:
                    return
                self._fetch(chunk, conns, view)
        except _Stopped:
            pass
        except BaseException as exc:
            self._fail(exc)
        finally:
            conns.close()
            if not retired:
                with self._lock:
                    self._active -= 1

    def _fetch(self, chunk: Chunk, conns: Connections, view: memoryview, reply: Reply | None = None) -> None:
        """Fill `chunk`, retrying with backoff; raises `SourceError` when out of retries."""
        failures = 0
        while not chunk.complete:
            before = chunk.done
            try:
                if reply is None:
                    self._check_stop()
                    self._acquire_slot()
                    try:
                        reply = self._request(conns, chunk)
                    except BaseException:
                        self._budget.release()
                        raise
                try:
                    self._fill(chunk, reply, view)
                finally:
                    self._drop(conns, reply)
                    reply = None
            except RetryableError as exc:
                failures = 1 if chunk.done - before >= PROGRESS_RESETS_RETRIES else failures + 1
                self._pause(exc, failures)
            self._check_stop()
        self._wake.set()  # checkpoint now: a finished chunk is never fetched again
        self._flush_wake.set()

    def _request(self, conns: Connections, chunk: Chunk) -> Reply:
        end = None if chunk.end is None else chunk.end - 1
        url = self._resolved
        try:
            reply = open_range(
                conns, url, chunk.pos, end, credentials=self._settings.credentials, guard=self._url_guard
            )
        except SourceError as exc:
            if url == self._url:
                raise
            self._resolved = self._url  # a signed redirect target may have expired: ask the source again
            raise RetryableError(f"{exc.reason} from the redirect target") from exc
        try:
            if self._ranged and not reply.ranged:
                raise RetryableError("the server stopped honouring ranges")
            if reply.ranged and reply.total != self._total:
                raise SourceError(f"the file changed on the server (size {self._total} → {reply.total})")
            state = self._state
            if state is not None and state.etag and reply.etag and reply.etag != state.etag:
                raise SourceError("the file changed on the server during the download (new ETag)")
        except BaseException:
            self._close(conns, reply)
            raise
        return reply

    def _fill(self, chunk: Chunk, reply: Reply, view: memoryview) -> None:
        """Stream `reply` into the part file at `chunk`'s offset until the chunk is complete."""
        body, fd, size = reply.body, self._part.fd, len(view)
        assert fd is not None
        skip = chunk.pos - reply.start  # a 200 restarts at byte 0: read past what is on disk
        if skip < 0:
            raise RetryableError(f"the server answered from byte {reply.start}, wanted {chunk.pos}")
        while skip:
            n = _read(body, view[: min(size, skip)])
            if not n:
                raise RetryableError(f"connection closed at byte {chunk.pos - skip}")
            skip -= n
        while not self._stop.is_set():
            end = chunk.end
            want = size if end is None else min(size, end - chunk.pos)
            if want <= 0:
                return
            n = _read(body, view[:want])
            if not n:
                if end is None:  # the body's end is the file's end
                    chunk.end = chunk.pos
                    return
                raise RetryableError(f"connection closed at byte {chunk.pos} of {end} (short body)")
            pos, written = chunk.pos, 0
            with self._write_lock:
                while written < n:
                    written += os.pwrite(fd, view[written:n], pos + written)
            chunk.done += n

    def _pause(self, exc: RetryableError, failures: int) -> None:
        retries = self._settings.retries
        if failures > retries:
            raise SourceError(f"{exc.reason} (gave up after {retries} retries)") from exc
        if exc.retry_after is not None:
            if exc.retry_after > self._settings.max_retry_after:
                raise SourceError(
                    f"{exc.reason}, asked to retry after {exc.retry_after:.0f} s (more than "
                    f"WEIGHTS_MAX_RETRY_AFTER={self._settings.max_retry_after:g})"
                ) from exc
            delay = exc.retry_after
        else:
            delay = backoff_delay(failures, base=self._settings.backoff, cap=self._settings.backoff_max)
        log.info("%s: %s; retry %d of %d in %.1f s", self._label, exc.reason, failures, retries, delay)
        self._sleep(delay)

    # -- the first request ---------------------------------------------------------------------------

    def _open_first(self, conns: Connections, start: int) -> Reply:
        """The first chunk's reply, with retries; the caller owns a connection slot until it is read."""
        try:
            return self._open_first_attempts(conns, start)
        except _Stopped:
            raise Cancelled(self._label) from None

    def _open_first_attempts(self, conns: Connections, start: int) -> Reply:
        end = start + self._settings.chunk_size - 1
        failures = 0
        while True:
            self._acquire_slot()
            try:
                reply = open_range(
                    conns,
                    self._url,
                    start,
                    end,
                    credentials=self._settings.credentials,
                    guard=self._url_guard,
                )
            except RetryableError as exc:
                self._budget.release()
                failures += 1
                self._pause(exc, failures)
                continue
            except BaseException:
                self._budget.release()
                raise
            self._resolved = reply.url
            return reply

    # -- stopping, checkpoints, progress -------------------------------------------------------------

    def _monitor(self) -> None:
        measured = time.monotonic()
        measured_bytes = sum(c.done for c in self._chunks)
        while True:
            self._wake.wait(WIDTH_WINDOW)
            self._wake.clear()
            if self._finished:
                return
            if self._cancel.is_set():
                self._halt()
            now = time.monotonic()
            if now - measured >= WIDTH_WINDOW:
                done = sum(c.done for c in self._chunks)
                self._adjust_width((done - measured_bytes) / (now - measured))
                measured, measured_bytes = now, done
            self._checkpoint()
            if self._report is not None:
                self._report(sum(c.done for c in self._chunks), self._total)

    def _flusher(self) -> None:
        """Start the disk writing each finished chunk; every `DURABLE_SECONDS`, make what is written
        durable."""
        written_back: set[int] = set()
        synced = time.monotonic()
        try:
            while not self._finished:
                self._flush_wake.wait(CHECKPOINT_SECONDS)
                self._flush_wake.clear()
                for chunk in self._chunks:
                    if chunk.complete and chunk.start not in written_back:
                        written_back.add(chunk.start)
                        self._part.start_writeback(chunk.start, chunk.pos)
                if time.monotonic() - synced >= DURABLE_SECONDS:
                    self._part.sync(tuple(done_ranges(self._chunks)))
                    synced = time.monotonic()
        except OSError as exc:
            self._fail(exc)

    def _checkpoint(self) -> None:
        if self._state is None:
            return
        self._state = replace(self._state, done=tuple(done_ranges(self._chunks)))
        try:
            self._part.checkpoint(self._state)
        except OSError as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            if self._error is None and not isinstance(exc, _Stopped):
                self._error = exc
        self._halt()

    def _halt(self) -> None:
        self._stop.set()
        with self._lock:
            for conns in self._connections:
                conns.abort()

    def _check_stop(self) -> None:
        if self._stop.is_set() or self._cancel.is_set():
            raise _Stopped

    def _sleep(self, seconds: float) -> None:
        remaining = seconds
        while remaining > 0:
            if self._stop.wait(min(remaining, 0.1)):
                break
            if self._cancel.is_set():
                break
            remaining -= 0.1
        self._check_stop()

    def _acquire_slot(self) -> None:
        while not self._budget.acquire(timeout=0.1):
            self._check_stop()

    def _new_connections(self) -> Connections:
        conns = Connections(timeout=self._settings.stall_timeout)
        with self._lock:
            self._connections.append(conns)
        return conns

    @staticmethod
    def _close(conns: Connections, reply: Reply) -> None:
        """Keep the connection only if the reply was read to its end."""
        if not reply.body.isclosed():
            conns.discard(reply.key)
            reply.body.close()

    def _drop(self, conns: Connections, reply: Reply) -> None:
        """Done with a reply: close it and give back the connection slot it held."""
        self._close(conns, reply)
        self._budget.release()


def _read(body: http.client.HTTPResponse, view: memoryview) -> int:
    try:
        return body.readinto(view)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise RetryableError(describe(exc)) from exc


def _first_gap(state: ResumeState | None) -> int:
    """Where a resume starts asking: the end of the bytes on disk from 0 (the last byte if all are)."""
    if state is None or not state.done or state.done[0][0] != 0:
        return 0
    end = state.done[0][1]
    return end if state.size is None or end < state.size else max(0, state.size - 1)
