"""Real processes: a download killed at half way resumes; two processes wanting one file download it once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.downloadkit import leftovers, payload, sha256
from tests.faultserver import FaultServer

CHILD = Path(__file__).resolve().parent / "download_child.py"
SIZE = 8 << 20
CHUNK = 256 << 10
CONNECTIONS = 4


@pytest.fixture
def server():
    with FaultServer() as running:
        yield running


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
