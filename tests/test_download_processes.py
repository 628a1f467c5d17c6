"""Real processes: a download killed at half way resumes; two processes wanting one file download it once;
a waiter behind a stuck holder does not wait forever."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.downloadkit import leftovers, payload, sha256

CHILD = Path(__file__).resolve().parent / "download_child.py"
SIZE = 8 << 20
CHUNK = 256 << 10
CONNECTIONS = 4


def _spawn(spec: dict) -> subprocess.Popen:
    argv = [sys.executable, str(CHILD), json.dumps(spec)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def _spec(tmp_path: Path, url: str, data: bytes | None) -> dict:
    spec = {
        "dest": str(tmp_path / "weights" / "checkpoints" / "w.bin"),
        "urls": [url],
        "settings": {"chunk_size": CHUNK, "connections_per_file": CONNECTIONS, "lock_timeout": 60.0},
    }
    if data is not None:
        spec |= {"size": len(data), "sha256": sha256(data)}
    return spec


@pytest.mark.parametrize("known_hash", [True, False], ids=["manifest-weight", "bare-url"])
def test_sigkill_at_half_then_restart_resumes_refetching_only_chunks_in_flight(server, tmp_path, known_hash):
    data = payload(SIZE)
    server.serve("/w.bin", data, rate=1 << 20)  # 4 connections at 1 MiB/s: about 2 s in all
    spec = _spec(tmp_path, server.url("/w.bin"), data if known_hash else None)
    first = _spawn(spec)
    assert server.wait_for_bytes("/w.bin", SIZE // 2, timeout=20)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    assert not Path(spec["dest"]).exists()

    result = _result(_spawn(spec))  # the dead process's lock must not block this one
    assert Path(spec["dest"]).read_bytes() == data
    assert result["sha256"] == sha256(data) and not result["waited"]
    assert result["resumed"] >= SIZE // 2 - CONNECTIONS * CHUNK
    assert server.bytes_served("/w.bin") <= SIZE + CONNECTIONS * CHUNK
    assert leftovers(tmp_path) == []


def test_restart_after_the_remote_file_changed_starts_over(server, tmp_path):
    old, new = payload(SIZE, seed=1), payload(SIZE, seed=2)
    server.serve("/w.bin", old, rate=1 << 20, etag='"v1"')
    spec = _spec(tmp_path, server.url("/w.bin"), None)
    first = _spawn(spec)
    assert server.wait_for_bytes("/w.bin", SIZE // 2, timeout=20)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    served_before = server.bytes_served("/w.bin")

    server.serve("/w.bin", new, etag='"v2"')
    result = _result(_spawn(spec))
    assert Path(spec["dest"]).read_bytes() == new
    assert result["resumed"] == 0 and result["fetched"] == SIZE
    # the whole file, one probe that found the new ETag, and what the killed process's sockets still took
    assert server.bytes_served("/w.bin") - served_before <= SIZE + 2 * CHUNK
    assert leftovers(tmp_path) == []


def test_two_processes_wanting_one_file_download_it_once(server, tmp_path):
    data = payload(SIZE)
    server.serve("/w.bin", data, rate=1 << 20)
    spec = _spec(tmp_path, server.url("/w.bin"), data)
    racers = [_spawn(spec), _spawn(spec)]
    results = [_result(process) for process in racers]
    assert Path(spec["dest"]).read_bytes() == data
    assert server.bytes_served("/w.bin") == SIZE
    downloaded = [r for r in results if r["fetched"]]
    assert len(downloaded) == 1 and downloaded[0]["fetched"] == SIZE
    other = next(r for r in results if not r["fetched"])
    assert other["waited"] or other["present"]
    assert leftovers(tmp_path) == []


def test_part_of_unknown_size_left_by_a_kill_before_the_rename_is_resumed_not_fatal(server, tmp_path):
    """Issue 9 item 9: after a length-less 200, every byte on disk but no rename: the state's size is
    unknown. A later attempt must not ask past the end (a 416 forever); it resumes or starts over."""
    data = payload(SIZE)
    server.serve("/w.bin", data, ignore_range=True, no_length=True)
    server.inject("/w.bin", "stall", after=SIZE, seconds=60)  # every byte sent, the close never comes
    spec = _spec(tmp_path, server.url("/w.bin"), None)
    spec["settings"] |= {"stall_timeout": 60.0}
    first = _spawn(spec)
    assert server.wait_for_bytes("/w.bin", SIZE, timeout=20)
    folder = Path(spec["dest"]).parent
    assert _wait(lambda: any(f'"done": [[0, {SIZE}]]' in p.read_text() for p in folder.glob("*.part.json")))
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)

    served = server.bytes_served("/w.bin")
    server.serve("/w.bin", data)  # the same file, now from a server that honours ranges
    result = _result(_spawn(spec))
    assert Path(spec["dest"]).read_bytes() == data and result["sha256"] == sha256(data)
    assert result["resumed"] == SIZE and server.bytes_served("/w.bin") - served <= CHUNK
    assert leftovers(tmp_path) == []


def test_waiter_behind_a_holder_that_brings_no_bytes_downloads_on_its_own(server, tmp_path):
    """Issue 9 item 11: the holder is alive (its heartbeat would go on) but stuck on a source that
    sends nothing; after WEIGHTS_LOCK_TIMEOUT without bytes the waiter fetches the file itself."""
    data = payload(SIZE)
    server.serve("/w.bin", data)
    server.inject("/w.bin", "stall", after=0, seconds=60)
    holder_spec = _spec(tmp_path, server.url("/w.bin"), data)
    holder_spec["settings"] |= {"stall_timeout": 60.0, "connections_per_file": 1}
    holder = _spawn(holder_spec)
    try:
        assert _wait(lambda: server.seen("/w.bin"))  # the holder has the lock and asked
        waiter_spec = _spec(tmp_path, server.url("/w.bin"), data)
        waiter_spec["settings"] |= {"lock_timeout": 1.0}
        started = time.monotonic()
        result = _result(_spawn(waiter_spec))
        assert time.monotonic() - started < 20 and holder.poll() is None  # the holder is still stuck
        assert result["waited"] is False and result["fetched"] == SIZE
        assert Path(waiter_spec["dest"]).read_bytes() == data
    finally:
        holder.kill()
        holder.wait(timeout=10)


def _wait(condition, timeout: float = 20.0):
    """Poll `condition` (files and servers offer no event) until truthy; its value, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    return None
