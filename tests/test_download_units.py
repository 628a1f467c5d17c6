"""Pure pieces of the downloader: chunk plans, retry timing, URL rules, settings, safetensors checks."""

from __future__ import annotations

import collections
import os
from email.utils import formatdate

import pytest

from tests.downloadkit import safetensors_bytes
from weightkit.download.chunks import Chunk, done_ranges, frontier, plan_chunks
from weightkit.download.control import Slots, Stop
from weightkit.download.rate import RateFloor
from weightkit.download.retry import backoff_delay, parse_retry_after
from weightkit.download.urls import credential_for, display_url, is_tar, mirror_url, origin
from weightkit.download.verify import mismatch, safetensors_problem
from weightkit.download.width import ConnectionWidth
from weightkit.download.workers import MIN_SPLIT, Workers
from weightkit.env import parse_size
from weightkit.errors import SettingsError
from weightkit.settings import Credential, DownloadSettings, WeightSettings


def test_plan_of_fresh_file_cuts_even_chunks_and_a_short_last_one():
    chunks = plan_chunks(10, (), 4)
    assert [(c.start, c.end, c.done) for c in chunks] == [(0, 4, 0), (4, 8, 0), (8, 10, 0)]


def test_plan_of_resumed_file_keeps_done_ranges_and_fetches_only_gaps():
    chunks = plan_chunks(20, [(0, 5), (8, 12), (11, 14)], 4)
    assert [(c.start, c.end, c.done) for c in chunks] == [
        (0, 5, 5),
        (5, 8, 0),
        (8, 14, 6),
        (14, 18, 0),
        (18, 20, 0),
    ]


def test_done_ranges_merge_adjacent_progress_and_skip_untouched_chunks():
    chunks = [Chunk(0, 4, 4), Chunk(4, 8, 2), Chunk(8, 12, 0), Chunk(12, 16, 1)]
    assert done_ranges(chunks) == [(0, 6), (12, 13)]


def test_frontier_stops_at_the_first_gap_and_reaches_the_end_when_complete():
    chunks = [Chunk(0, 4, 4), Chunk(4, 8, 2), Chunk(8, 12, 4)]
    assert frontier(chunks, 0) == (6, 1)
    chunks[1].done = 4
    assert frontier(chunks, 1) == (12, 3)


def test_backoff_doubles_up_to_the_cap_with_jitter_between_half_and_all():
    assert backoff_delay(1, base=0.5, cap=30, rand=0.0) == 0.25
    assert backoff_delay(1, base=0.5, cap=30, rand=1.0) == 0.5
    assert backoff_delay(4, base=0.5, cap=30, rand=1.0) == 4.0
    assert backoff_delay(20, base=0.5, cap=30, rand=1.0) == 30.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), (None, None), ("soon", None), (formatdate(1_000_060, usegmt=True), 60.0)],
)
def test_retry_after_reads_seconds_and_http_dates(header, expected):
    assert parse_retry_after(header, now=1_000_000) == expected


def test_credentials_go_to_their_exact_origin_only():
    hf = Credential(env_var="HF_TOKEN", origins=("https://huggingface.co",), token="t")
    assert credential_for("https://huggingface.co/a/b", [hf]) is hf
    assert credential_for("https://HuggingFace.co:443/a", [hf]) is hf
    assert credential_for("http://huggingface.co/a", [hf]) is None
    assert credential_for("https://cdn-lfs.huggingface.co/a", [hf]) is None
    assert credential_for("https://huggingface.co.evil.com/a", [hf]) is None
    assert origin("http://127.0.0.1:8080/x") == "http://127.0.0.1:8080"


def test_display_url_drops_user_info_and_query_tokens():
    shown = display_url("https://user:pw@civitai.com/api/download/1?token=secret&x=1#f")
    assert shown == "https://civitai.com/api/download/1"


def test_mirror_url_fills_folder_name_and_hash():
    template = "http://cache/{folder}/{name}?h={sha256}"
    url = mirror_url(template, folder="loras", name="a b/c.safetensors", sha256="ab")
    assert url == "http://cache/loras/a%20b/c.safetensors?h=ab"
    assert is_tar("https://weights.replicate.delivery/x/model.safetensors.tar")
    assert not is_tar("https://example.com/model.tar.safetensors")


def test_settings_from_env_reads_every_download_variable():
    settings = WeightSettings.from_env(
        {
            "WEIGHTS_CONNECTIONS_PER_FILE": "8",
            "WEIGHTS_MAX_CONNECTIONS": "24",
            "WEIGHTS_CONCURRENT_FILES": "3",
            "WEIGHTS_CHUNK_SIZE": "8M",
            "WEIGHTS_STALL_TIMEOUT": "12.5",
            "WEIGHTS_RETRIES": "0",
            "WEIGHTS_MIRROR": "http://cache.internal/weights/{folder}/{name}",
            "HUGGING_FACE_HUB_TOKEN": "hf-legacy",
            "CIVITAI_API_TOKEN": "civ",
            "WEIGHTS_MIN_FREE_BYTES": "1G",
            "WEIGHTS_MIN_RATE": "64K",
            "WEIGHTS_MIN_RATE_WINDOW": "10",
        }
    ).download
    assert (settings.connections_per_file, settings.max_connections, settings.concurrent_files) == (8, 24, 3)
    assert settings.chunk_size == 8 << 20 and settings.stall_timeout == 12.5 and settings.retries == 0
    assert settings.mirror == "http://cache.internal/weights/{folder}/{name}"
    assert [c.token for c in settings.credentials] == ["hf-legacy", "civ"]
    assert settings.min_free_bytes == 1 << 30
    assert (settings.min_rate, settings.min_rate_window) == (64 << 10, 10.0)
    assert "hf-legacy" not in repr(settings)


def test_settings_defaults_without_environment():
    assert DownloadSettings.from_env({}) == DownloadSettings()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WEIGHTS_CONNECTIONS_PER_FILE", "0"),
        ("WEIGHTS_CHUNK_SIZE", "lots"),
        ("WEIGHTS_STALL_TIMEOUT", "-1"),
        ("WEIGHTS_MIRROR", "http://cache/{folder}"),
    ],
)
def test_bad_setting_names_the_variable(variable, value):
    with pytest.raises(SettingsError, match=variable):
        DownloadSettings.from_env({variable: value})


@pytest.mark.parametrize(
    "template",
    [
        "http://cache/{folder}/{name}?rev={revision}",
        "http://cache/{name}{",
        "http://cache/{name}}",
        "http://cache/{0}/{name}",
        "http://cache/{name!r}",
        "http://cache/{name:>9}",
        "http://cache/{name.upper}",
    ],
)
def test_mirror_template_that_cannot_be_filled_is_refused_at_settings_time_naming_the_fields(template):
    with pytest.raises(SettingsError, match=r"WEIGHTS_MIRROR.*\{folder\}, \{name\} and \{sha256\}"):
        DownloadSettings.from_env({"WEIGHTS_MIRROR": template})


def test_mirror_template_with_every_field_and_a_literal_brace_fills_in():
    settings = DownloadSettings.from_env({"WEIGHTS_MIRROR": "http://cache/{folder}/{sha256}/{name}?x={{y}}"})
    assert settings.mirror is not None
    filled = mirror_url(settings.mirror, folder="loras", name="a b.bin", sha256="ab" * 32)
    assert filled == f"http://cache/loras/{'ab' * 32}/a%20b.bin?x={{y}}"


def test_parse_size_units():
    assert (parse_size("16M"), parse_size("1GiB"), parse_size("512"), parse_size("1.5G")) == (
        16 << 20,
        1 << 30,
        512,
        None,
    )


def test_mismatch_names_expected_and_actual():
    assert mismatch(expected_size=3, size=3, expected_sha256="a" * 64, sha256="a" * 64) is None
    assert "expected 4 bytes, got 3" in mismatch(expected_size=4, size=3, expected_sha256=None, sha256="x")
    why = mismatch(expected_size=None, size=3, expected_sha256="a" * 64, sha256="b" * 64)
    assert "a" * 64 in why and "b" * 64 in why


def _problem(tmp_path, data: bytes) -> str | None:
    path = tmp_path / "x.safetensors"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        return safetensors_problem(fd, len(data))
    finally:
        os.close(fd)


def test_safetensors_check_accepts_a_valid_file(tmp_path):
    assert _problem(tmp_path, safetensors_bytes(1000)) is None


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"<html>login</html>", "header length"),
        (b"abc", "shorter"),
        (safetensors_bytes(1000)[:-10], "data_offsets"),
        (safetensors_bytes(1000) + b"extra", "cover"),
        ((5).to_bytes(8, "little") + b"nope!", "not JSON"),
    ],
)
def test_safetensors_check_rejects_pages_and_truncated_files(tmp_path, data, why):
    assert why in _problem(tmp_path, data)


def test_width_opens_the_rest_when_connections_are_slow_and_keeps_them_if_that_pays():
    width = ConnectionWidth(limit=32, start=4, fast=100.0)
    assert width.target == 4
    assert width.observe(4 * 50.0, active=4) and width.target == 32
    assert not width.observe(10 * 50.0, active=32)  # still connecting: not judged yet
    assert not width.observe(32 * 50.0, active=32) and width.target == 32


def test_width_goes_back_and_settles_when_more_connections_did_not_help():
    width = ConnectionWidth(limit=32, start=4, fast=100.0)
    assert width.observe(4 * 90.0, active=4) and width.target == 32
    width.observe(300.0, active=32)
    assert width.observe(380.0, active=32) and width.target == 4
    assert not width.observe(4 * 10.0, active=4) and width.target == 4


def test_width_stays_narrow_on_fast_connections():
    width = ConnectionWidth(limit=32, start=4, fast=100.0)
    assert not width.observe(4 * 300.0, active=4) and width.target == 4
    assert not width.observe(4 * 50.0, active=3)  # not all started yet: no judgement


def test_rate_floor_passes_a_window_that_brought_enough_and_starts_the_next():
    watch = RateFloor(bytes_per_second=100, window=1.0).watch(started=0.0)
    watch = watch.fed(60, 0.5).fed(50, 1.0)
    assert not watch.slow and (watch.since, watch.seen) == (1.0, 0)


def test_rate_floor_flags_a_window_below_the_floor_even_with_bytes_trickling():
    watch = RateFloor(bytes_per_second=100, window=1.0).watch(started=0.0)
    for tick in range(1, 11):
        watch = watch.fed(1, tick / 10)  # a byte every 0.1 s: never a stall, far below the floor
    assert watch.slow


def test_rate_floor_counts_a_late_read_toward_the_window_it_ends():
    watch = RateFloor(bytes_per_second=100, window=1.0).watch(started=0.0)
    assert not watch.fed(250, 2.5).slow  # 2.5 s blocked in one read that brought 250 bytes: 100/s
    assert watch.fed(249, 2.5).slow


def test_rate_floor_of_zero_is_off():
    watch = RateFloor(bytes_per_second=0, window=1.0).watch(started=0.0)
    assert not watch.fed(0, 100.0).slow


class _Preempted(list):
    """The chunk list, with the split's worker running between the split's steps: when the new piece is
    inserted, the cut chunk's worker fills it to the end it sees, and the gap-free front is taken."""

    def insert(self, index, piece):  # type: ignore[override]
        cut = self[index - 1]
        cut.done = cut.end - cut.start
        self.front = frontier(self, 0)[0]
        self.written_to = _first_unwritten(self)
        super().insert(index, piece)


def _first_unwritten(chunks) -> int:
    covered = 0
    for start, end in sorted((c.start, c.pos) for c in chunks):
        if start > covered:
            break
        covered = max(covered, end)
    return covered


def test_split_never_shows_the_hasher_unwritten_bytes_behind_the_front():
    size = 8 * MIN_SPLIT
    cut, after = Chunk(0, size), Chunk(size, 2 * size, size)
    chunks = _Preempted([cut, after])
    workers = Workers(
        source=None,
        part=None,
        chunks=chunks,
        pending=collections.deque(),
        settings=DownloadSettings(),
        slots=Slots(1),
        stop=Stop(),
        label="w.bin",
    )
    workers._ranged, workers._in_flight = True, {cut}
    piece = workers._split()
    assert piece is not None and piece.start == cut.end == size // 2
    assert chunks.front <= chunks.written_to
