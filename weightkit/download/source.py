"""One URL as a download asks it for ranges: the fetching half's `Fetch(url) -> stream, size`.

The first request follows the URL's redirects; its reply says the file's size, validators and whether
the server honours ranges. Later requests go straight to the URL it was redirected to (a signed CDN
URL), and each reply is checked against the first: a file whose size or ETag changed fails the source,
a server that stops honouring ranges is retried. If the redirect target refuses (it expired), the next
request goes through the original URL again. Each request takes a connection slot first; the `Stream`
it returns holds that slot until it is closed.
"""

from __future__ import annotations

from collections.abc import Iterable

from weightkit.download.control import Slots, Stop
from weightkit.download.httprange import (
    Connections,
    Guard,
    RangeNotSatisfiable,
    Reply,
    RetryableError,
    SourceError,
    open_range,
)
from weightkit.download.rate import RateFloor
from weightkit.download.stream import Stream
from weightkit.settings import Credential

__all__ = ["Source"]


class Source:
    """Range requests to `url`, over a caller's connections, within a shared connection budget."""

    def __init__(
        self,
        url: str,
        *,
        credentials: Iterable[Credential],
        guard: Guard | None,
        floor: RateFloor,
        stall_timeout: float,
    ) -> None:
        self.url = url
        self._resolved = url
        self._credentials = tuple(credentials)
        self._guard = guard
        self._floor = floor
        self._stall_timeout = stall_timeout
        self._first: Reply | None = None
        self._total: int | None = None

    def connections(self) -> Connections:
        return Connections(timeout=self._stall_timeout)

    def open(self, conns: Connections, start: int, end: int | None, *, slots: Slots, stop: Stop) -> Stream:
        """Bytes `start`..`end` (inclusive; None: to the end) as a stream holding a connection slot.

        Raises `RetryableError` for what a retry may cure, `RangeNotSatisfiable` when `start` is past
        the end, `SourceError` when this source will not deliver the file, `Stopped` when `stop` is set.
        """
        slot = slots.take(stop)
        url = self._resolved
        try:
            reply = open_range(conns, url, start, end, credentials=self._credentials, guard=self._guard)
        except RangeNotSatisfiable:
            slot.release()
            raise
        except SourceError as exc:
            slot.release()
            if url == self.url:
                raise
            self._resolved = self.url  # a signed redirect target may have expired: ask the source again
            raise RetryableError(f"{exc.reason} from the redirect target") from exc
        except BaseException:
            slot.release()
            raise
        stream = Stream(reply, conns, slot, floor=self._floor, stall_timeout=self._stall_timeout)
        try:
            self._check(reply)
        except BaseException:
            stream.close()
            raise
        return stream

    def adopt(self, reply: Reply, total: int | None) -> None:
        """`reply` is the first the download uses, for a file of `total` bytes (None: not yet known):
        later replies must agree with it."""
        self._first = reply
        self._total = total
        self._resolved = reply.url

    def _check(self, reply: Reply) -> None:
        first = self._first
        if first is None:
            return
        if first.ranged and not reply.ranged:
            raise RetryableError("the server stopped honouring ranges")
        if reply.ranged and self._total is not None and reply.total != self._total:
            raise SourceError(f"the file changed on the server (size {self._total} → {reply.total})")
        if first.etag and reply.etag and reply.etag != first.etag:
            raise SourceError("the file changed on the server during the download (new ETag)")
