"""sha256 of a download computed while it downloads.

Chunks finish out of order, so the hasher follows the gap-free front of the file and reads those bytes
back with `pread` (from the page cache, as they were just written) in a thread of its own; hashlib
releases the GIL, so when the network is the limit the hash is done moments after the last byte lands.
A resumed download re-reads what an earlier run wrote, as it would have to anyway.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence

from weightkit.download.chunks import Chunk, frontier

__all__ = ["OrderedHasher"]

HASH_BLOCK = 256 << 10
_POLL = 0.02


class OrderedHasher:
    """Hashes file `fd` front to back as `chunks` complete. `finish()` returns the hex digest."""

    def __init__(self, fd: int, chunks: Sequence[Chunk]) -> None:
        self._fd = fd
        self._chunks = chunks
        self._digest = hashlib.sha256()
        self._hashed = 0
        self._total: int | None = None
        self._abandon = False
        self._wake = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="weightkit-hash", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def finish(self, total: int) -> str:
        """Wait until all `total` bytes are hashed; raises the error a read hit, if any."""
        self._total = total
        self._wake.set()
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._digest.hexdigest()

    def stop(self) -> None:
        """Abandon hashing (the download failed); returns once the thread is gone."""
        self._abandon = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        buffer = bytearray(HASH_BLOCK)
        view = memoryview(buffer)
        index = 0
        try:
            while not self._abandon:
                limit, index = frontier(self._chunks, index)
                while self._hashed < limit and not self._abandon:
                    want = min(HASH_BLOCK, limit - self._hashed)
                    n = os.preadv(self._fd, [view[:want]], self._hashed)
                    if n <= 0:
                        raise OSError(f"part file ended at byte {self._hashed} while hashing")
                    self._digest.update(view[:n])
                    self._hashed += n
                if self._total is not None and self._hashed >= self._total:
                    return
                self._wake.wait(_POLL)
        except BaseException as exc:  # handed to finish()
            self._error = exc
