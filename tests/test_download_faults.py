"""The downloader against a real local server that misbehaves: nothing lost, no partial final file."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import pytest

from tests.downloadkit import fast_settings, leftovers, payload, safetensors_bytes, sha256, with_token
from weightkit.download import Downloader, FetchRequest
from weightkit.errors import DiskSpaceError, DownloadError, DownloadsFailedError, GatedWeightError
from weightkit.verified import VerifiedRecords

SIZE = 3 << 20


def _request(tmp_path: Path, urls, data: bytes | None, name: str = "w.bin", **fields) -> FetchRequest:
    dest = tmp_path / "weights" / "checkpoints" / name
    if data is not None:
        fields.setdefault("size", len(data))
        fields.setdefault("sha256", sha256(data))
    return FetchRequest(dest=dest, urls=tuple(urls), folder="checkpoints", name=name, **fields)


def _records(tmp_path: Path) -> VerifiedRecords:
    return VerifiedRecords(tmp_path / "weights" / ".weightkit" / "verified")


def test_clean_download_is_ranged_verified_renamed_and_recorded(server, tmp_path):
    data = payload(SIZE)
    server.serve("/w.bin", data)
    records = _records(tmp_path)
    request = _request(tmp_path, [server.url("/w.bin")], data)
    result = Downloader(fast_settings(), records=records).fetch(request)
    assert result.path.read_bytes() == data
    assert (result.size, result.sha256, result.fetched, result.present) == (SIZE, sha256(data), SIZE, False)
    assert {s.status for s in server.seen("/w.bin")} == {206}
    assert server.bytes_served("/w.bin") == SIZE
    assert records.lookup(result.path) == sha256(data)
    assert leftovers(tmp_path) == []


def test_connection_reset_mid_chunk_is_retried_with_nothing_lost(server, tmp_path):
    data = payload(SIZE)
    server.serve("/w.bin", data)
    server.inject("/w.bin", "reset", after=100_000, times=2)
    result = Downloader(fast_settings()).fetch(_request(tmp_path, [server.url("/w.bin")], data))
    assert result.path.read_bytes() == data
    assert len(server.seen("/w.bin")) == SIZE // (256 << 10) + 2  # each reset chunk asked for once more
    assert server.bytes_served("/w.bin") <= SIZE + 2 * 100_000  # at most what the resets cut off
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("code", [503, 429])
def test_busy_server_with_retry_after_is_waited_for_then_succeeds(server, tmp_path, code):
    data = payload(SIZE)
    server.serve("/w.bin", data)
    server.inject("/w.bin", "status", code=code, retry_after=1)
    result = Downloader(fast_settings(connections_per_file=1)).fetch(
        _request(tmp_path, [server.url("/w.bin")], data)
    )
    assert result.path.read_bytes() == data
    seen = server.seen("/w.bin")
    assert seen[0].status == code
    assert seen[1].at - seen[0].at >= 1.0  # Retry-After honoured, not the 10 ms backoff


def test_retry_after_longer_than_allowed_moves_to_the_next_source(server, other_server, tmp_path):
    data = payload(SIZE)
    server.serve("/w.bin", data)
    server.inject("/w.bin", "status", code=503, retry_after=3600)
    other_server.serve("/w.bin", data)
    result = Downloader(fast_settings()).fetch(
        _request(tmp_path, [server.url("/w.bin"), other_server.url("/w.bin")], data)
    )
    assert result.source == other_server.url("/w.bin")
    assert len(server.seen("/w.bin")) == 1


def test_slow_connections_make_the_download_open_more(server, tmp_path):
    data = payload(4 << 20)
    server.serve("/w.bin", data, rate=2 << 20)  # a CDN capping each stream at 2 MiB/s
    result = Downloader(fast_settings(connections_per_file=8)).fetch(
        _request(tmp_path, [server.url("/w.bin")], data)
    )
    assert result.path.read_bytes() == data
    assert 4 < len({s.client for s in server.seen("/w.bin")}) <= 8


def test_server_ignoring_range_gets_one_stream(server, tmp_path):
    data = payload(SIZE)
    server.serve("/w.bin", data, ignore_range=True)
    result = Downloader(fast_settings()).fetch(_request(tmp_path, [server.url("/w.bin")], data))
    assert result.path.read_bytes() == data
    assert [s.status for s in server.seen("/w.bin")] == [200]
    assert server.bytes_served() == SIZE


def test_single_stream_cut_short_restarts_and_skips_what_is_on_disk(server, tmp_path):
    data = payload(SIZE)
    server.serve("/w.bin", data, ignore_range=True)
    server.inject("/w.bin", "short", by=SIZE // 2)
    result = Downloader(fast_settings()).fetch(_request(tmp_path, [server.url("/w.bin")], data))
    assert result.path.read_bytes() == data
    assert [s.status for s in server.seen("/w.bin")] == [200, 200]
    assert leftovers(tmp_path) == []


def test_wrong_bytes_from_first_source_fall_back_to_the_next(server, other_server, tmp_path):
    data = payload(SIZE)
    server.serve("/w.bin", data, corrupt=True)
    other_server.serve("/w.bin", data)
    records = _records(tmp_path)
    result = Downloader(fast_settings(), records=records).fetch(
        _request(tmp_path, [server.url("/w.bin"), other_server.url("/w.bin")], data)
    )
    assert result.path.read_bytes() == data
    assert result.source == other_server.url("/w.bin")
    assert other_server.bytes_served() == SIZE  # started over: nothing kept from the bad source
    assert records.lookup(result.path) == sha256(data)


def test_wrong_bytes_everywhere_leave_no_file_and_say_expected_and_actual(server, other_server, tmp_path):
    data = payload(SIZE)
    server.serve("/w.bin", data, corrupt=True)
    other_server.serve("/w.bin", data, corrupt=True)
    request = _request(tmp_path, [server.url("/w.bin"), other_server.url("/w.bin")], data)
    with pytest.raises(DownloadError) as caught:
        Downloader(fast_settings()).fetch(request)
    error = caught.value
    assert not request.dest.exists() and leftovers(tmp_path) == []
    assert error.expected_sha256 == sha256(data) and error.actual_sha256 not in (None, sha256(data))
    assert error.actual_size == SIZE
    assert [url for url, _ in error.attempts] == [server.url("/w.bin"), other_server.url("/w.bin")]
    assert all("sha256 mismatch" in why for _, why in error.attempts)
    assert sha256(data) in str(error) and error.actual_sha256 in str(error)


def test_content_length_that_lies_is_caught_and_the_missing_bytes_refetched(server, tmp_path):
    data = payload(SIZE)
    server.serve("/w.bin", data)
    server.inject("/w.bin", "short", by=50_000, times=3)
    result = Downloader(fast_settings()).fetch(_request(tmp_path, [server.url("/w.bin")], data))
    assert result.path.read_bytes() == data
    assert server.bytes_served() == SIZE  # exactly the missing tails were asked for again
    assert leftovers(tmp_path) == []


def test_size_that_contradicts_the_manifest_is_not_downloaded(server, other_server, tmp_path):
    data = payload(SIZE)
    server.serve("/w.bin", data + b"x")
    other_server.serve("/w.bin", data)
    result = Downloader(fast_settings()).fetch(
        _request(tmp_path, [server.url("/w.bin"), other_server.url("/w.bin")], data)
    )
    assert result.source == other_server.url("/w.bin")
    assert server.bytes_served() < 2 * (256 << 10)  # only the first reply was opened, then dropped


def test_stalled_connection_times_out_and_the_chunk_is_fetched_again(server, tmp_path):
    data = payload(SIZE)
    server.serve("/w.bin", data)
    server.inject("/w.bin", "stall", after=300 << 10)  # one whole 256 KiB read block, then silence
    result = Downloader(fast_settings(chunk_size=1 << 20)).fetch(
        _request(tmp_path, [server.url("/w.bin")], data)
    )
    assert result.path.read_bytes() == data
    ranges = [s.headers["Range"].removeprefix("bytes=").split("-") for s in server.seen("/w.bin")]
    (retried,) = [int(start) for start, end in ranges if end == "1048575" and start != "0"]
    assert 256 << 10 <= retried <= 300 << 10  # asked again from (about) where the stall began


def test_source_that_keeps_stalling_is_abandoned_for_the_next(server, other_server, tmp_path):
    data = payload(SIZE)
    server.serve("/w.bin", data)
    server.inject("/w.bin", "stall", after=0, times=50)
    other_server.serve("/w.bin", data)
    result = Downloader(fast_settings(retries=1)).fetch(
        _request(tmp_path, [server.url("/w.bin"), other_server.url("/w.bin")], data)
    )
    assert result.path.read_bytes() == data and result.source == other_server.url("/w.bin")


def test_not_enough_disk_space_fails_before_any_request_or_file(server, tmp_path):
    server.serve("/w.bin", b"x")
    request = _request(tmp_path, [server.url("/w.bin")], None, size=1 << 60, sha256="0" * 64)
    with pytest.raises(DiskSpaceError) as caught:
        Downloader(fast_settings()).fetch(request)
    assert caught.value.needed == 1 << 60 and 0 < caught.value.free < 1 << 60
    assert str(1 << 60) in str(caught.value) and str(caught.value.free) in str(caught.value)
    assert server.requests == [] and not (tmp_path / "weights").exists()


def test_bare_url_without_size_is_checked_against_free_space_before_writing(server, tmp_path):
    server.serve("/big.bin", payload(1 << 20))
    settings = fast_settings(min_free_bytes=1 << 60)
    request = FetchRequest.for_url(server.url("/big.bin"), tmp_path / "loras" / "big.bin")
    with pytest.raises(DiskSpaceError):
        Downloader(settings).fetch(request)
    assert leftovers(tmp_path) == [] and not request.dest.exists()


def test_redirect_to_another_host_does_not_forward_the_token(server, other_server, tmp_path, caplog):
    data = payload(SIZE)
    other_server.serve("/cdn/w.bin", data)
    server.serve("/resolve/w.bin", b"", redirect=other_server.url("/cdn/w.bin"), require_token="hf_secret")
    settings = with_token(fast_settings(), server.origin, "hf_secret")
    caplog.set_level(logging.DEBUG)
    result = Downloader(settings).fetch(_request(tmp_path, [server.url("/resolve/w.bin")], data, gated=True))
    assert result.path.read_bytes() == data
    assert server.seen("/resolve/w.bin")[0].headers["Authorization"] == "Bearer hf_secret"
    assert all("Authorization" not in s.headers for s in other_server.requests)
    assert "hf_secret" not in caplog.text and "Authorization" not in caplog.text


def test_gated_weight_without_token_names_the_variable_and_sends_nothing(server, tmp_path):
    server.serve("/w.bin", payload(1000), require_token="t")
    settings = with_token(fast_settings(), server.origin, None)
    with pytest.raises(GatedWeightError, match="HF_TOKEN") as caught:
        Downloader(settings).fetch(_request(tmp_path, [server.url("/w.bin")], payload(1000), gated=True))
    assert caught.value.env_var == "HF_TOKEN" and server.requests == []


def test_401_from_a_token_host_without_token_names_the_variable(server, tmp_path):
    server.serve("/w.bin", payload(1000), require_token="t")
    settings = with_token(fast_settings(), server.origin, None, env_var="CIVITAI_API_TOKEN")
    request = FetchRequest.for_url(server.url("/w.bin"), tmp_path / "loras" / "w.bin")
    with pytest.raises(GatedWeightError, match="CIVITAI_API_TOKEN"):
        Downloader(settings).fetch(request)
    assert not request.dest.exists()


def test_refused_token_is_a_download_error_that_never_shows_the_token(server, tmp_path, caplog):
    server.serve("/w.bin", payload(1000), require_token="right")
    settings = with_token(fast_settings(), server.origin, "wrong-secret")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(DownloadError, match="HF_TOKEN token was refused") as caught:
        Downloader(settings).fetch(_request(tmp_path, [server.url("/w.bin")], payload(1000)))
    assert "wrong-secret" not in str(caught.value) and "wrong-secret" not in caplog.text


def test_mirror_is_tried_before_the_manifest_urls(server, other_server, tmp_path):
    data = payload(SIZE)
    server.serve("/weights/checkpoints/w.bin", data)
    other_server.serve("/w.bin", data)
    settings = fast_settings(mirror=server.origin + "/weights/{folder}/{name}")
    result = Downloader(settings).fetch(_request(tmp_path, [other_server.url("/w.bin")], data))
    assert result.source == server.url("/weights/checkpoints/w.bin") and other_server.requests == []


def test_missing_mirror_copy_falls_through_to_the_manifest_url(server, other_server, tmp_path):
    data = payload(SIZE)
    other_server.serve("/w.bin", data)
    settings = fast_settings(mirror=server.origin + "/weights/{folder}/{name}")
    result = Downloader(settings).fetch(_request(tmp_path, [other_server.url("/w.bin")], data))
    assert result.source == other_server.url("/w.bin") and server.seen("/weights/checkpoints/w.bin")


def test_verified_file_in_place_is_present_without_network(server, tmp_path):
    data = payload(SIZE)
    server.serve("/w.bin", data)
    downloader = Downloader(fast_settings(), records=_records(tmp_path))
    request = _request(tmp_path, [server.url("/w.bin")], data)
    downloader.fetch(request)
    before = len(server.requests)
    again = downloader.fetch(request)
    assert again.present and again.fetched == 0 and len(server.requests) == before


def test_file_in_place_with_wrong_hash_is_replaced(server, tmp_path):
    data = payload(SIZE)
    server.serve("/w.bin", data)
    request = _request(tmp_path, [server.url("/w.bin")], data)
    request.dest.parent.mkdir(parents=True)
    request.dest.write_bytes(payload(SIZE, seed=9))
    result = Downloader(fast_settings(), records=_records(tmp_path)).fetch(request)
    assert not result.present and request.dest.read_bytes() == data


def test_bare_url_takes_size_from_server_and_records_the_hash(server, tmp_path):
    data = safetensors_bytes(SIZE)
    server.serve("/lora.safetensors", data)
    records = _records(tmp_path)
    dest = tmp_path / "weights" / "loras" / "x.safetensors"
    request = FetchRequest.for_url(server.url("/lora.safetensors"), dest)
    result = Downloader(fast_settings(), records=records).fetch(request)
    assert result.size == len(data) and result.sha256 == sha256(data)
    assert records.lookup(request.dest) == sha256(data)


def test_bare_url_serving_a_web_page_as_safetensors_is_refused(server, tmp_path):
    server.serve("/lora.safetensors", b"<!doctype html><html>Please log in</html>" * 100)
    request = FetchRequest.for_url(server.url("/lora.safetensors"), tmp_path / "loras" / "x.safetensors")
    with pytest.raises(DownloadError, match="not a safetensors file"):
        Downloader(fast_settings()).fetch(request)
    assert not request.dest.exists() and leftovers(tmp_path) == []


def test_fetch_many_downloads_a_kit_and_names_every_failure(server, tmp_path):
    good = {f"/g{i}.bin": payload(1 << 20, seed=i) for i in range(3)}
    for path, data in good.items():
        server.serve(path, data)
    server.serve("/bad.bin", payload(1 << 20, seed=7), corrupt=True)
    requests = [_request(tmp_path, [server.url(p)], d, name=p[1:]) for p, d in good.items()]
    requests.append(_request(tmp_path, [server.url("/bad.bin")], payload(1 << 20, seed=7), name="bad.bin"))
    requests.append(_request(tmp_path, [server.url("/missing.bin")], payload(10), name="missing.bin"))
    with pytest.raises(DownloadsFailedError) as caught:
        Downloader(fast_settings()).fetch_many(requests)
    error = caught.value
    assert set(error.failures) == {"checkpoints/bad.bin", "checkpoints/missing.bin"}
    assert "sha256 mismatch" in str(error) and "HTTP 404" in str(error)
    assert error.summary.files == 3 and error.summary.bytes == 3 << 20
    for request in requests[:3]:
        assert request.dest.read_bytes() == good["/" + request.name]
    assert leftovers(tmp_path) == []


def test_fetch_many_reports_files_already_present(server, tmp_path):
    data = payload(1 << 20)
    server.serve("/w.bin", data)
    downloader = Downloader(fast_settings(), records=_records(tmp_path))
    request = _request(tmp_path, [server.url("/w.bin")], data)
    first = downloader.fetch_many([request, request])
    second = downloader.fetch_many([request])
    assert (first.files, first.bytes, first.present) == (1, 1 << 20, 0)
    assert (second.files, second.bytes, second.present) == (1, 0, 1)


def test_fetch_many_checks_space_for_the_whole_kit_first(server, tmp_path):
    server.serve("/a.bin", b"a")
    requests = [
        _request(tmp_path, [server.url("/a.bin")], None, name=f"{i}.bin", size=1 << 59, sha256="0" * 64)
        for i in range(2)
    ]
    with pytest.raises(DiskSpaceError) as caught:
        Downloader(fast_settings()).fetch_many(requests)
    assert caught.value.needed == 1 << 60 and server.requests == []


def test_part_file_names_are_unique_per_process_and_never_final(server, tmp_path):
    data = payload(SIZE)
    server.serve("/w.bin", data, rate=4 << 20)
    request = _request(tmp_path, [server.url("/w.bin")], data)
    downloader = Downloader(fast_settings())
    names: list[str] = []
    done = threading.Event()

    def watch():
        while not done.is_set():
            names.extend(os.listdir(request.dest.parent) if request.dest.parent.exists() else [])
            done.wait(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        downloader.fetch(request)
    finally:
        done.set()
        watcher.join()
    parts = {n for n in names if n.endswith(".part")}
    assert parts and all(n.startswith("w.bin.") and f"-{os.getpid()}-" in n for n in parts)


def test_the_last_chunk_in_flight_is_split_so_idle_connections_finish_it(server, tmp_path):
    data = payload(4 << 20)
    server.serve("/w.bin", data, rate=1 << 20)  # the first request asks for all 4 MiB: one chunk
    result = Downloader(fast_settings(chunk_size=4 << 20)).fetch(
        _request(tmp_path, [server.url("/w.bin")], data)
    )
    assert result.path.read_bytes() == data
    seen = server.seen("/w.bin")
    assert seen[0].headers["Range"] == "bytes=0-4194303" and len({s.client for s in seen}) > 1
    assert sum(s.sent for s in seen[1:]) >= 1 << 20  # others took over halves of what was left
