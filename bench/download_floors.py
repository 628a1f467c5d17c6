"""The floors of a download on this machine, measured in every round beside the runs they bound: what
hashlib's sha256 does on one core, and what writing the file's size from memory costs, into the page
cache and then fsync'd. The VM's speed drifts within the hour, so no round borrows another's figures.
Each runs in a child: a forked tool inherits this process's peak RSS, so the bench never holds the
buffers itself."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Write", "sha256_rate", "warm", "write_rate"]


def warm(folder: Path, size: int) -> None:
    """Sync, then write and delete `size` bytes, so the next run's page cache writes hit warm memory."""
    os.sync()
    scratch = folder / "warm.bin"
    zeros = bytes(1 << 20)
    with open(scratch, "wb") as handle:
        for _ in range(0, size, len(zeros)):
            handle.write(zeros)
    scratch.unlink()
    os.sync()


_HASH = """
import hashlib, os, sys, time
block = os.urandom(64 << 20)
digest = hashlib.sha256()
started = time.perf_counter()
for _ in range(4):
    digest.update(block)
print(len(block) * 4 / (time.perf_counter() - started) / 1e6)
"""


def sha256_rate() -> float:
    """MB/s of hashlib's sha256 on one core right now: no verified download here can go faster.

    The VM's speed drifts (on the development VM this moved between 1.2 and 1.5 GB/s within an hour),
    so it is measured in every round, beside the runs it bounds. In a child: a forked tool inherits
    this process's peak RSS, so the bench never holds the block itself."""
    argv = [sys.executable, "-c", _HASH]
    return float(subprocess.run(argv, check=True, capture_output=True).stdout)


_WRITE = """
import os, resource, sys, time
path, size = sys.argv[1], int(sys.argv[2])
block = bytes(1 << 20)
before = resource.getrusage(resource.RUSAGE_SELF)
started = time.perf_counter()
with open(path, "wb", buffering=0) as handle:
    for _ in range(0, size, len(block)):
        handle.write(block)
    written = time.perf_counter()
    after = resource.getrusage(resource.RUSAGE_SELF)
    os.fsync(handle.fileno())
durable = time.perf_counter()
cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
print(size / (written - started) / 1e6, size / (durable - started) / 1e6, cpu / (size / 2**30))
"""


@dataclass(frozen=True)
class Write:
    """Writing the file's size from memory in one thread: into the page cache, then fsync'd."""

    cached_mb_s: float  # until the last write returned
    durable_mb_s: float  # until fsync returned: no download that makes its file durable is faster
    cpu_s_per_gib: float  # of the writes alone: every tool here that keeps the file pays at least this


def write_rate(folder: Path, size: int) -> Write:
    """A write of `size` bytes right now, from the same warmed state as the tools. On one VM the page
    cache write cost 0.26-0.45 CPU-s/GiB and fsync'd 2 GiB reached 553-738 MB/s, below curl's speed
    there (curl does not fsync): no download that makes its file durable could match curl."""
    warm(folder, size)
    scratch = folder / "write.bin"
    argv = [sys.executable, "-c", _WRITE, str(scratch), str(size)]
    try:
        cached, durable, cpu = subprocess.run(argv, check=True, capture_output=True).stdout.split()
    finally:
        scratch.unlink(missing_ok=True)
    return Write(float(cached), float(durable), float(cpu))
