"""The byte ranges of one file: which are written, which are still to fetch.

A file is cut into `Chunk`s that cover it exactly, in order. A chunk's `done` counts the bytes written
from its start; a worker thread owns a chunk while fetching it and is the only writer of `done`.
Ranges already on disk from an earlier run become chunks that are done from the start, so a resumed
download re-fetches only what was missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["Chunk", "done_ranges", "frontier", "plan_chunks"]


@dataclass(eq=False)
class Chunk:
    """Bytes `start`..`end` (exclusive; None: until the body ends, size unknown) of the file."""

    start: int
    end: int | None
    done: int = 0

    @property
    def pos(self) -> int:
        """The next byte to write."""
        return self.start + self.done

    @property
    def complete(self) -> bool:
        return self.end is not None and self.pos >= self.end


def plan_chunks(
    total: int, done: Iterable[tuple[int, int]], chunk_size: int, *, lead: tuple[int, int] | None = None
) -> list[Chunk]:
    """Chunks covering `0..total`: each range in `done` as one finished chunk, the gaps cut into pieces
    of at most `chunk_size`. `lead`, the range a first request already asked for, is one chunk of its
    own (within its gap), so that reply is read to its end."""
    chunks: list[Chunk] = []
    pos = 0
    for start, end in _merged(done, total):
        chunks.extend(_cut(pos, start, chunk_size, lead))
        chunks.append(Chunk(start, end, end - start))
        pos = end
    chunks.extend(_cut(pos, total, chunk_size, lead))
    return chunks


def done_ranges(chunks: Sequence[Chunk]) -> list[tuple[int, int]]:
    """The written bytes as merged `(start, end)` ranges: what a resume needs to remember."""
    ranges: list[tuple[int, int]] = []
    for chunk in chunks:
        done = chunk.done
        if done <= 0:
            continue
        start, end = chunk.start, chunk.start + done
        if ranges and ranges[-1][1] == start:
            ranges[-1] = (ranges[-1][0], end)
        else:
            ranges.append((start, end))
    return ranges


def frontier(chunks: Sequence[Chunk], index: int) -> tuple[int, int]:
    """How far the file is written without a gap, scanning from chunk `index`; returns that offset and
    the index of the first incomplete chunk (to start the next scan from)."""
    while index < len(chunks) and chunks[index].complete:
        index += 1
    if index == len(chunks):
        return (chunks[-1].pos if chunks else 0), index
    return chunks[index].pos, index


def _merged(ranges: Iterable[tuple[int, int]], total: int) -> list[tuple[int, int]]:
    clipped = sorted((max(0, s), min(total, e)) for s, e in ranges if min(total, e) > max(0, s))
    merged: list[tuple[int, int]] = []
    for start, end in clipped:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _cut(start: int, end: int, size: int, lead: tuple[int, int] | None) -> list[Chunk]:
    first: list[Chunk] = []
    if lead is not None and lead[0] == start and start < end:
        first = [Chunk(start, min(max(lead[1], start + 1), end))]
        start = first[0].end or end
    return first + [Chunk(pos, min(pos + size, end)) for pos in range(start, end, size)]
