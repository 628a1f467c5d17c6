"""Is the file already in place, and vouched for? A stat and a verified record on the fast path.

A file at the destination counts as present when its size is the one expected and its hash is vouched
for: by its verified record, or, without one, by hashing it once against the sha256 the request
carries (then recorded with who stated that sha256). A request whose size and sha256 are still the
host's to state (`ask_host`) is present only on a record that a manifest or host vouched for; a bare
`computed` record (an older download's, before sources were recorded) is not enough, so the host is
asked and, if its sha256 is the recorded one, the record is upgraded without hashing the file again.
A request that carries no sha256 at all (a bare URL) only needs the file to be there.
"""

from __future__ import annotations

import logging
import stat
import time

from weightkit.download.control import Cancelled, Stop, Stopped
from weightkit.download.hasher import sha256_path
from weightkit.download.request import FetchRequest, FetchResult
from weightkit.verified import COMPUTED, VerifiedRecords

__all__ = ["present_result"]

log = logging.getLogger(__name__)


def present_result(
    request: FetchRequest,
    records: VerifiedRecords | None,
    started: float,
    *,
    stop: Stop,
    waited: bool = False,
) -> FetchResult | None:
    """The result for a file already in place and vouched for (see the module docstring), else None.
    Raises `Cancelled` if `stop` is set while the file is hashed."""
    dest = request.dest
    try:
        st = dest.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not stat.S_ISREG(st.st_mode) or (request.size is not None and st.st_size != request.size):
        return None
    record = records.lookup_record(dest, st) if records is not None else None
    digest, source = (record.sha256, record.source) if record is not None else (None, None)
    if request.sha256 is not None:
        if digest is None:
            log.info("%s is already at %s; checking its sha256", request.label, dest)
            try:
                digest = sha256_path(dest, stop)
            except Stopped:
                raise Cancelled(request.label) from None
        if digest != request.sha256:
            log.warning("%s at %s has the wrong sha256; downloading it again", request.label, dest)
            return None
        if records is not None and source in (None, COMPUTED):
            records.record(dest, digest, st, source=request.hash_from)
        source = request.hash_from if source in (None, COMPUTED) else source
    elif request.ask_host and (record is None or not record.vouched):
        return None  # the host states the sha256 to check it by: ask it first
    return FetchResult(
        name=request.label,
        path=dest,
        size=st.st_size,
        sha256=digest,
        seconds=time.monotonic() - started,
        present=not waited,
        waited=waited,
        hash_from=source,
    )
