"""What a failed or cancelled download gives back: connection slots, sockets, file descriptors, threads,
and no part file that no state describes."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.downloadkit import fast_settings, leftovers, payload
from weightkit.download import Downloader, FetchRequest
from weightkit.download.control import Cancelled, Stop
from weightkit.download.lock import DownloadLock
from weightkit.download.partfile import PartFile, ResumeState

SIZE = 3 << 20


def _open_under(folder: Path) -> list[str]:
    """Files under `folder` this process holds open."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # the descriptor listdir itself used, now closed
        if target.startswith(str(folder)):
            found.append(target)
    return found


def _hash_threads() -> int:
    return sum(thread.name == "weightkit-hash" for thread in threading.enumerate())


def test_disk_failure_before_the_workers_start_gives_back_the_first_replys_slot_and_files(
    server, tmp_path, monkeypatch
):
    """The first checkpoint fails (a full disk): the first reply is closed, its connection slot given
    back, the part file closed and removed (no state says what it holds)."""
    server.serve("/w.bin", payload(SIZE))
    real = PartFile.checkpoint
    failures = [OSError(errno.ENOSPC, "No space left on device (injected)")]

    def checkpoint(self: PartFile, state: ResumeState, *, active: bool = True) -> None:
        if failures and active:
            raise failures.pop()
        real(self, state, active=active)

    monkeypatch.setattr(PartFile, "checkpoint", checkpoint)
    downloader = Downloader(fast_settings(max_connections=1, connections_per_file=1))
    request = FetchRequest.for_url(server.url("/w.bin"), tmp_path / "w.bin")
    with pytest.raises(OSError, match="injected"):
        downloader.fetch(request)
    assert _open_under(tmp_path) == [] and leftovers(tmp_path) == []
    outcome: list[object] = []
    second = threading.Thread(target=lambda: outcome.append(downloader.fetch(request)), daemon=True)
    second.start()
    second.join(30)  # with the one slot leaked, this fetch would wait for it forever
    assert outcome and (tmp_path / "w.bin").read_bytes() == payload(SIZE)


def test_final_sync_failing_ends_the_hashing_thread_with_the_download(server, tmp_path, monkeypatch):
    server.serve("/w.bin", payload(SIZE))

    def sync(self: PartFile, written: object) -> None:
        raise OSError(errno.EIO, "Input/output error (injected)")

    monkeypatch.setattr(PartFile, "sync", sync)
    before = _hash_threads()
    with pytest.raises(OSError, match="injected"):
        Downloader(fast_settings()).fetch(FetchRequest.for_url(server.url("/w.bin"), tmp_path / "w.bin"))
    assert _hash_threads() == before


def test_cancelled_wait_for_the_lock_closes_the_lock_file(tmp_path):
    dest = tmp_path / "w.bin"
    holder_code = (
        "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
        "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()"
    )
    lock_path = tmp_path / ".w.bin.lock"
    with subprocess.Popen(
        [sys.executable, "-c", holder_code, str(lock_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
            for _ in range(3):
                stop = Stop()
                stop.set()
                with pytest.raises(Cancelled), DownloadLock(dest, stale_after=60, stop=stop):
                    pass
            assert _open_under(tmp_path) == []
        finally:
            holder.kill()
