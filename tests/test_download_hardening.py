"""Issue 9, the downloader's items, against real servers on loopback and real small volumes: a cancel
stops a download at once and leaves it resumable; a trickling source times out; a read-only weights
folder, a full volume and a body of unstated length are handled, not trusted or crashed on."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from tests.downloadkit import (
    fast_settings,
    leftovers,
    needs_root,
    payload,
    raise_in,
    remount_readonly,
    sha256,
    tmpfs,
)
from weightkit.download import Downloader, FetchRequest
from weightkit.errors import DiskSpaceError, DownloadError
from weightkit.verified import VerifiedRecords

CHUNK = 256 << 10


class Cancel(BaseException):
    """What coglet raises in the predict thread (`CancelationException` is a BaseException too)."""


def _request(folder: Path, urls, data: bytes, name: str = "w.bin") -> FetchRequest:
    dest = folder / "checkpoints" / name
    return FetchRequest(dest=dest, urls=tuple(urls), size=len(data), sha256=sha256(data), name=name)


# -- item 3: a cancel stops the transfer within a second, and the next fetch resumes ------------------


@pytest.mark.parametrize("call", ["fetch", "fetch_many"])
def test_cancel_in_the_calling_thread_stops_the_download_at_once_and_the_next_fetch_resumes(
    server, tmp_path, call
):
    data = payload(8 << 20)
    server.serve("/w.bin", data, rate=512 << 10)  # 4 connections at 512 KiB/s: 4 s in all
    request = _request(tmp_path, [server.url("/w.bin")], data)
    downloader = Downloader(fast_settings(stall_timeout=10.0))
    outcome: list[BaseException] = []
    ended = threading.Event()

    def predict() -> None:
        try:
            downloader.fetch(request) if call == "fetch" else downloader.fetch_many([request])
        except BaseException as exc:
            outcome.append(exc)
        ended.set()

    thread = threading.Thread(target=predict)
    thread.start()
    assert server.wait_for_bytes("/w.bin", 1 << 20, timeout=20)
    raise_in(thread, Cancel)
    cancelled_at = time.monotonic()
    assert ended.wait(30)
    latency = time.monotonic() - cancelled_at
    served = server.bytes_served("/w.bin")
    print(f"cancel to return: {latency * 1000:.0f} ms, {served} of {len(data)} bytes served")
    assert outcome and isinstance(outcome[0], Cancel)
    assert latency < 2.0 and served < len(data) // 2  # not left to run to its end
    assert not request.dest.exists()
    (left,) = [p for p in request.dest.parent.iterdir() if p.name.endswith(".part.json")]
    state = left.read_text()
    assert '"active": false' in state  # released: the next fetch, in any process, resumes it

    time.sleep(0.3)  # nothing of the cancelled download may still be reading
    assert server.bytes_served("/w.bin") - served < CHUNK
    server.serve("/w.bin", data)
    result = Downloader(fast_settings()).fetch(request)
    assert request.dest.read_bytes() == data and result.resumed >= (1 << 20) - 4 * CHUNK
    assert server.bytes_served("/w.bin") <= len(data) + 4 * CHUNK
    assert leftovers(tmp_path) == []


# -- item 10: a trickling source never timed out ----------------------------------------------------


def test_trickling_source_is_left_for_the_next_one_by_the_minimum_rate(server, other_server, tmp_path):
    data = payload(64 << 10)
    server.serve("/w.bin", data, rate=200)  # a byte every 5 ms: the stall timeout never trips
    other_server.serve("/w.bin", data)
    settings = fast_settings(min_rate=10_000, min_rate_window=0.3, retries=1, stall_timeout=5.0)
    started = time.monotonic()
    result = Downloader(settings).fetch(
        _request(tmp_path, [server.url("/w.bin"), other_server.url("/w.bin")], data)
    )
    assert result.source == other_server.url("/w.bin") and result.path.read_bytes() == data
    assert len(server.seen("/w.bin")) == 2  # the first connection and its one replacement
    assert time.monotonic() - started < 20  # not the 5 minutes the trickle would take


def test_connection_below_the_minimum_rate_is_replaced_and_the_source_kept(server, tmp_path):
    data = payload(64 << 10)
    server.serve("/w.bin", data)
    server.inject("/w.bin", "slow", rate=200)
    settings = fast_settings(min_rate=10_000, min_rate_window=0.3, retries=2, stall_timeout=5.0)
    result = Downloader(settings).fetch(_request(tmp_path, [server.url("/w.bin")], data))
    assert result.source == server.url("/w.bin") and result.path.read_bytes() == data
    first, second = server.seen("/w.bin")
    assert first.client != second.client  # a new connection, asking from where the first stopped
    start, _, end = second.headers["Range"].removeprefix("bytes=").partition("-")
    assert 0 < int(start) <= first.sent and end == str(len(data) - 1)


# -- item 12: a read-only weights folder ----------------------------------------------------------------


@needs_root
def test_present_weight_in_a_read_only_folder_is_present_and_its_record_kept_elsewhere(
    server, tmp_path, monkeypatch
):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    data = payload(1 << 20)
    server.serve("/w.bin", data)
    with tmpfs(tmp_path / "weights") as weights:
        request = _request(weights, [server.url("/w.bin")], data)
        request.dest.parent.mkdir(parents=True)
        request.dest.write_bytes(data)
        remount_readonly(weights)
        records = VerifiedRecords(weights / ".weightkit" / "verified")  # as the store builds it
        summary = Downloader(fast_settings(), records=records).fetch_many([request])
        assert summary.present == 1 and server.requests == []
        again = VerifiedRecords(weights / ".weightkit" / "verified")  # the next process
        assert again.lookup(request.dest) == sha256(data)
        assert again.fallback.is_relative_to(tmp_path / "tmp")


# -- item 13: a source of unknown size on a small volume ------------------------------------------------


@needs_root
def test_source_of_unknown_size_keeps_the_free_margin_and_fails_typed_leaving_nothing(server, tmp_path):
    server.serve("/big.bin", payload(40 << 20), ignore_range=True, no_length=True, rate=40 << 20)
    margin = 4 << 20
    with tmpfs(tmp_path / "volume", size="30m") as volume:
        request = FetchRequest.for_url(server.url("/big.bin"), volume / "loras" / "big.bin")
        lowest = [shutil.disk_usage(volume).free]
        done = threading.Event()

        def watch() -> None:
            while not done.wait(0.002):
                lowest.append(shutil.disk_usage(volume).free)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            with pytest.raises(DiskSpaceError) as caught:
                Downloader(fast_settings(min_free_bytes=margin)).fetch(request)
        finally:
            done.set()
            watcher.join()
        assert caught.value.margin == margin and "WEIGHTS_MIN_FREE_BYTES" in str(caught.value)
        assert "nothing was written" not in str(caught.value)  # bytes were, and removed: unresumable
        assert min(lowest) >= margin - (64 << 10)  # the margin was kept while streaming
        assert leftovers(volume) == [] and not request.dest.exists()  # nothing unresumable left


# -- item 14: a body whose length nobody stated ---------------------------------------------------------


def test_body_of_unstated_length_cut_short_is_refused_not_installed(server, tmp_path):
    data = payload(2 << 20)
    server.serve("/style.pth", data, ignore_range=True, no_length=True)
    server.inject("/style.pth", "short", by=len(data) // 2)
    records = VerifiedRecords(tmp_path / "records")
    request = FetchRequest.for_url(server.url("/style.pth"), tmp_path / "loras" / "style.pth")
    with pytest.raises(DownloadError, match="size cannot be confirmed"):
        Downloader(fast_settings(), records=records).fetch(request)
    assert not request.dest.exists() and records.lookup(request.dest) is None


def test_body_of_unstated_length_cut_short_is_completed_by_a_range_request(server, tmp_path):
    data = payload(2 << 20)
    server.serve("/style.pth", data, no_length=True)
    server.inject("/style.pth", "short", by=len(data) // 2, whole=True)  # a 200, cut at half
    records = VerifiedRecords(tmp_path / "records")
    request = FetchRequest.for_url(server.url("/style.pth"), tmp_path / "loras" / "style.pth")
    result = Downloader(fast_settings(), records=records).fetch(request)
    assert request.dest.read_bytes() == data and records.lookup(request.dest) == sha256(data)
    first, probe = server.seen("/style.pth")
    assert (first.status, probe.status) == (200, 206) and probe.headers["Range"] == f"bytes={len(data) // 2}-"
    assert server.bytes_served() == len(data) and result.size == len(data)


def test_body_of_unstated_length_that_ended_is_confirmed_by_a_416(server, tmp_path):
    data = payload(1 << 20)
    server.serve("/style.pth", data, no_length=True)
    server.inject("/style.pth", "short", by=0, whole=True)  # the whole body as a 200, then close
    request = FetchRequest.for_url(server.url("/style.pth"), tmp_path / "loras" / "style.pth")
    Downloader(fast_settings()).fetch(request)
    assert request.dest.read_bytes() == data
    assert [s.status for s in server.seen("/style.pth")] == [200, 416]
