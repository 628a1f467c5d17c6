"""One file from one source into its part file: parallel range requests, or one stream when the server
ignores ranges. This module plans and watches; `workers.py` fetches, `partfile.py` writes.

The first request asks for the first missing chunk; its answer says everything needed to plan: a 206
gives the file's size (`Content-Range`) and validators, a 200 means the server ignores ranges and the
body is the whole file. Compared with the part file's resume state, it decides whether the bytes on
disk are kept; a state the server contradicts (a different size or ETag, a 416) is dropped and the
download starts over, never fails for it. Then worker threads fetch the chunks, and the thread that
called `run()` watches them: it checkpoints the resume state when a chunk completes and a few times a
second, reports progress, feeds the connection width its measured throughput, and when the caller's
`Stop` is set, stops every worker at once (their sockets are shut down, not waited for). A hasher
thread computes sha256 behind the gap-free front; the part file's flusher writes finished chunks back.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from weightkit.download.chunks import Chunk, done_ranges, plan_chunks
from weightkit.download.control import Cancelled, Slots, Stop, Stopped
from weightkit.download.hasher import OrderedHasher
from weightkit.download.httprange import (
    Connections,
    Guard,
    RangeNotSatisfiable,
    Reply,
    RetryableError,
    SourceError,
)
from weightkit.download.partfile import PartFile, ResumeState
from weightkit.download.rate import RateFloor
from weightkit.download.source import Source
from weightkit.download.stream import Stream
from weightkit.download.urls import display_url
from weightkit.download.workers import Workers, pause
from weightkit.settings import DownloadSettings

__all__ = ["Cancelled", "Outcome", "Report", "Transfer"]

log = logging.getLogger(__name__)

# Throughput is measured over windows this long to decide how many connections to use (`width.py`);
# the first window is shorter: a capped stream shows within tens of milliseconds, and a small file
# behind a cap is done before a long first window ends.
WIDTH_WINDOW = 0.15
FIRST_WINDOW = 0.05
# The resume state is checkpointed when a chunk completes, but not more often than this.
CHECKPOINT_MIN = 0.05
# The smallest chunk a file is cut into when it is small for its connections (see `_chunk_size`).
MIN_CHUNK = 1 << 20
# The first request asks for at most this much, before the file's size is known: a small file's
# first chunk should not be the longest one.
FIRST_CHUNK = 4 << 20


@dataclass(frozen=True)
class Outcome:
    """A completed transfer: every byte of `size` is in the part file."""

    url: str
    size: int
    sha256: str | None
    resumed: int
    fetched: int


Report = Callable[[int, "int | None"], None]


@dataclass
class _Plan:
    stream: Stream  # the first reply, unread
    chunks: list[Chunk]
    total: int | None

    @property
    def first(self) -> Chunk | None:
        """The chunk the first reply fills (None when it is of no use: all on disk, a probe)."""
        start = self.stream.reply.start
        return next((c for c in self.chunks if not c.complete and c.start == start), None)


class Transfer:
    """Downloads `url` into `part`. `run()` returns an `Outcome` or raises `SourceError` (this source
    failed; the part keeps what arrived), `Cancelled` (`stop` was set), `DiskSpaceError`, or an
    `OSError` of the local disk."""

    def __init__(
        self,
        *,
        url: str,
        part: PartFile,
        expected_size: int | None,
        hash_content: bool,
        resume_any_source: bool,
        settings: DownloadSettings,
        slots: Slots,
        stop: Stop,
        report: Report | None = None,
        label: str = "",
        url_guard: Guard | None = None,
        send_credentials: bool = True,
    ) -> None:
        self._url = url
        self._part = part
        self._expected_size = expected_size
        self._hash_content = hash_content
        self._resume_any_source = resume_any_source
        self._settings = settings
        self._slots = slots
        self._cancel = stop
        self._stop = stop.child()  # this transfer's own: its failure stops only its threads
        self._report = report
        self._label = label or part.dest.name
        self._source = Source(
            url,
            credentials=settings.credentials if send_credentials else (),
            guard=url_guard,
            floor=RateFloor(settings.min_rate, settings.min_rate_window),
            stall_timeout=settings.stall_timeout,
        )
        self._state: ResumeState | None = None

    def run(self) -> Outcome:
        conns = self._source.connections()
        self._stop.on_set(conns.abort)
        try:
            plan = self._plan(conns)
        except Stopped:
            conns.close()
            raise Cancelled(self._label) from None
        except BaseException:
            conns.close()
            raise
        return self._transfer(plan, conns)

    # -- planning --------------------------------------------------------------------------------------

    def _plan(self, conns: Connections) -> _Plan:
        """Open the first reply, decide what on disk is kept, open (and reserve) the part file."""
        resumed = self._part.state
        start = _first_gap(resumed)
        try:
            stream = self._open_first(conns, start)
        except RangeNotSatisfiable:
            if start == 0:
                raise
            message = "%s: the server has no byte %d, which the part file's state says it has; starting over"
            log.info(message, self._label, start)
            resumed, stream = None, self._open_first(conns, 0)
        try:
            total = self._size_of(stream.reply)
            keep = resumed is not None and stream.reply.ranged and self._can_resume(resumed, stream.reply)
            if resumed is not None and resumed.done and not keep:
                why = "the server ignores ranges" if not stream.reply.ranged else "the remote file changed"
                log.info("%s: %s; starting over", self._label, why)
            if not keep and stream.reply.start != 0:  # asked to resume mid-file, but those bytes are no use
                stream.close()
                stream = self._open_first(conns, 0)
                total = self._size_of(stream.reply)
            if total is None:
                chunks = [Chunk(0, None)]
            elif not stream.reply.ranged:
                chunks = [Chunk(0, total)]
            else:
                lead = (stream.reply.start, stream.reply.start + (stream.reply.length or 0))
                done = resumed.done if keep and resumed is not None else ()
                chunks = plan_chunks(total, done, self._chunk_size(total), lead=lead)
            self._part.open(total, fresh=not keep, margin=self._settings.min_free_bytes)
        except BaseException:
            stream.close()
            raise
        self._source.adopt(stream.reply, total)
        return _Plan(stream, chunks, total)

    def _open_first(self, conns: Connections, start: int) -> Stream:
        """The first chunk's reply, with retries."""
        end = start + min(self._settings.chunk_size, FIRST_CHUNK) - 1
        failures = 0
        while True:
            try:
                return self._source.open(conns, start, end, slots=self._slots, stop=self._stop)
            except RetryableError as exc:
                failures += 1
                pause(exc, failures, settings=self._settings, stop=self._stop, label=self._label)

    def _size_of(self, reply: Reply) -> int | None:
        """The file's size as this reply (or else the manifest) tells it; raises `SourceError` if the
        two disagree."""
        if reply.ranged and reply.total is None:
            raise SourceError("the server did not say the file's size (Content-Range total '*')")
        total = reply.total if reply.ranged else reply.length
        if self._expected_size is not None and total is not None and total != self._expected_size:
            raise SourceError(f"the server's file has {total} bytes, the manifest says {self._expected_size}")
        return self._expected_size if total is None else total

    def _can_resume(self, state: ResumeState, reply: Reply) -> bool:
        """Same size (or, for a state of unknown size, a file at least as long as what is on disk), and
        validators that agree (or a sha256 that will catch any difference)."""
        on_disk = max((end for _, end in state.done), default=0)
        if state.size is None and (reply.total is None or reply.total < on_disk):
            return False
        if state.size is not None and state.size != reply.total:
            return False
        if state.url != display_url(self._url):
            return self._resume_any_source
        pairs = [(state.etag, reply.etag), (state.last_modified, reply.last_modified)]
        compared = [(old, new) for old, new in pairs if old and new]
        if any(old != new for old, new in compared):
            return False
        return bool(compared) or self._resume_any_source

    def _chunk_size(self, total: int) -> int:
        """`WEIGHTS_CHUNK_SIZE`, or less for a file too small to give every connection two chunks,
        so a small file behind a per-stream cap still gets all its connections at once."""
        per_connection = -(-total // (2 * self._settings.connections_per_file))
        return min(self._settings.chunk_size, max(MIN_CHUNK, per_connection))

    # -- the transfer ----------------------------------------------------------------------------------

    def _transfer(self, plan: _Plan, conns: Connections) -> Outcome:
        chunks, reply, first = plan.chunks, plan.stream.reply, plan.first
        resumed_bytes = sum(c.done for c in chunks)
        lead = (first, plan.stream, conns) if first is not None else None
        if lead is None:
            plan.stream.close()
            conns.close()
        try:  # until the first worker takes the first reply, its slot and socket are ours to close
            self._start(plan, resumed_bytes)
        except BaseException:
            plan.stream.close()
            conns.close()
            raise
        fd = self._part.fd
        assert fd is not None
        hasher = OrderedHasher(fd, chunks) if self._hash_content else None
        pending = collections.deque(c for c in chunks if not c.complete and c is not first)
        workers = Workers(
            source=self._source,
            part=self._part,
            chunks=chunks,
            pending=pending,
            settings=self._settings,
            slots=self._slots,
            stop=self._stop,
            label=self._label,
        )
        try:
            error = self._run_workers(workers, chunks, hasher, lead, ranged=reply.ranged)
            if error is not None:
                raise error
            if self._cancel.is_set():
                raise Cancelled(self._label)
            if not all(chunk.complete for chunk in chunks):  # every worker gone with work left: a bug
                raise SourceError("the download stopped before its end")
            size = chunks[-1].pos if chunks else 0
            digest = hasher.finish(size) if hasher is not None else None
        finally:
            if hasher is not None:
                hasher.stop()  # whichever way it ended, the hashing thread ends with it
        if self._report is not None:
            self._report(size, size)
        fetched = size - resumed_bytes
        return Outcome(
            url=display_url(self._url), size=size, sha256=digest, resumed=resumed_bytes, fetched=fetched
        )

    def _start(self, plan: _Plan, resumed_bytes: int) -> None:
        """The first checkpoint (what is kept, where from), the log line and the first progress tick."""
        reply = plan.stream.reply
        self._state = ResumeState(
            url=display_url(self._url),
            size=plan.total,
            etag=reply.etag,
            last_modified=reply.last_modified,
            done=tuple(done_ranges(plan.chunks)),
        )
        self._checkpoint(plan.chunks)
        self._log_start(reply, plan.total, resumed_bytes)
        if self._report is not None:
            self._report(resumed_bytes, plan.total)

    def _run_workers(
        self,
        workers: Workers,
        chunks: list[Chunk],
        hasher: OrderedHasher | None,
        first: tuple[Chunk, Stream, Connections] | None,
        *,
        ranged: bool,
    ) -> BaseException | None:
        """Run the workers to the end (or the first failure, or the stop); returns the failure."""
        if hasher is not None:
            hasher.start()
        self._part.start_flushing(lambda: tuple(done_ranges(chunks)))
        try:
            workers.start(first, ranged=ranged)
            self._watch(workers, chunks, ranged=ranged)
            workers.join()
        except OSError as exc:  # a checkpoint or the flusher failed
            workers.fail(exc)
        finally:
            self._stop.set()  # whatever is still running stops now
            workers.join()
            try:
                self._part.stop_flushing()
                if not self._cancel.is_set():  # a cancel must return at once: `done` survives without it
                    self._part.sync(tuple(done_ranges(chunks)))
                self._checkpoint(chunks)
            except OSError as exc:
                workers.fail(exc)
        return workers.error

    def _watch(self, workers: Workers, chunks: list[Chunk], *, ranged: bool) -> None:
        """Until the workers are done: checkpoints, progress, width; returns at once when stopped."""
        measured = checkpointed = time.monotonic()
        measured_bytes = sum(c.done for c in chunks)
        window = FIRST_WINDOW
        while True:
            workers.progress.wait(max(0.0, measured + window - time.monotonic()))
            if not workers.running() or self._stop.is_set():
                return
            workers.ended.wait(checkpointed + CHECKPOINT_MIN - time.monotonic())  # not more often
            workers.progress.clear()
            error = self._part.flush_error()
            if error is not None:
                raise error
            now = time.monotonic()
            done = sum(c.done for c in chunks)
            if now - measured >= window:
                workers.adjust((done - measured_bytes) / (now - measured), ranged=ranged)
                measured, measured_bytes, window = now, done, WIDTH_WINDOW
            self._checkpoint(chunks)
            checkpointed = now
            if self._report is not None:
                self._report(done, self._state.size if self._state else None)

    def _checkpoint(self, chunks: list[Chunk]) -> None:
        if self._state is not None:
            self._state = replace(self._state, done=tuple(done_ranges(chunks)))
            self._part.checkpoint(self._state)

    def _log_start(self, reply: Reply, total: int | None, resumed_bytes: int) -> None:
        mode = "ranged" if reply.ranged else "single stream (server ignores ranges)"
        resumed = f", resuming at {resumed_bytes} bytes" if resumed_bytes else ""
        size = "unknown" if total is None else total
        shown = display_url(self._url)
        log.info("Fetching %s from %s: %s bytes, %s%s", self._label, shown, size, mode, resumed)


def _first_gap(state: ResumeState | None) -> int:
    """Where a resume starts asking: the end of the bytes on disk from 0; the last of them if all are
    there, or if the size is unknown (so the reply says the size, where asking past the end would not)."""
    if state is None or not state.done or state.done[0][0] != 0:
        return 0
    end = state.done[0][1]
    if state.size is None or end >= state.size:
        return max(0, end - 1)
    return end
