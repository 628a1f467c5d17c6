"""Weights whose manifest entry leaves size and sha256 to Hugging Face: verified against what the host
states in its resolve answer (a stand-in Hugging Face on 127.0.0.1 redirecting to a "CDN" on 127.0.0.2),
refused when it states nothing or something the bytes contradict, with nothing under the final name."""

from __future__ import annotations

import logging
import os
import shutil

import pytest

from tests.downloadkit import (
    fast_settings,
    leftovers,
    needs_root,
    payload,
    safetensors_bytes,
    sha256,
    tmpfs,
    with_token,
)
from tests.hubservers import Hub, hub
from weightkit.check import check_weights
from weightkit.download import Downloader, FetchRequest
from weightkit.errors import DiskSpaceError, DownloadError, GatedWeightError, HostFactsError
from weightkit.extract import WeightRef
from weightkit.manifest_file import parse_entry
from weightkit.modelpaths import ModelPaths
from weightkit.verified import VerifiedRecords

REPO = "org/repo"
DATA = safetensors_bytes(2 << 20, seed=11)


@pytest.fixture
def stand_in():
    with hub() as running:
        yield running


def _entry(file: str = "w.safetensors", folder: str = "loras", **fields):
    raw = {
        "name": file,
        "folder": folder,
        "size": None,
        "sha256": None,
        "urls": [Hub.url(REPO, file)],
        "license": "mit",
        "non_commercial": False,
        "gated": False,
        **fields,
    }
    return parse_entry(raw, where="test")


def _setup(stand_in: Hub, tmp_path, **changes):
    settings = fast_settings(hf_endpoint=stand_in.endpoint, **changes)
    records = VerifiedRecords(tmp_path / "weights" / ".weightkit" / "verified")
    return Downloader(settings, records=records), records


def _dest(tmp_path, entry):
    return tmp_path / "weights" / entry.folder / entry.name


def test_an_entry_without_a_hash_is_verified_against_the_linked_headers_and_recorded_so(stand_in, tmp_path):
    cdn_path = stand_in.publish(REPO, "w.safetensors", DATA)
    downloader, records = _setup(stand_in, tmp_path)
    entry = _entry()
    result = downloader.fetch(FetchRequest.for_entry(entry, _dest(tmp_path, entry)))
    assert result.path.read_bytes() == DATA
    assert (result.size, result.sha256, result.hash_from) == (len(DATA), sha256(DATA), "huggingface")
    assert stand_in.head_requests() == [Hub.resolve_path(REPO, "w.safetensors")]
    assert cdn_path in stand_in.cdn_gets()
    record = records.lookup_record(result.path)
    assert record is not None and (record.sha256, record.source) == (sha256(DATA), "huggingface")
    paths = ModelPaths.build(tmp_path / "ComfyUI", weights_dir=tmp_path / "weights")
    (found,) = check_weights([WeightRef.of_entry(entry)], paths, records).present
    assert found.verified


def test_the_fast_path_after_the_first_verification_is_a_stat_and_asks_no_host(stand_in, tmp_path):
    stand_in.publish(REPO, "w.safetensors", DATA)
    downloader, _ = _setup(stand_in, tmp_path)
    entry = _entry()
    request = FetchRequest.for_entry(entry, _dest(tmp_path, entry))
    downloader.fetch(request)
    asked = len(stand_in.hf.requests) + len(stand_in.cdn.requests)
    again = downloader.fetch(request)
    assert again.present and again.hash_from == "huggingface"
    assert len(stand_in.hf.requests) + len(stand_in.cdn.requests) == asked


@pytest.mark.parametrize(
    ("linked", "says"),
    [("wrong-sha256", "sha256 mismatch"), ("wrong-size", "the manifest says")],
)
def test_linked_headers_that_disagree_with_the_bytes_are_refused_with_nothing_under_the_final_name(
    stand_in, tmp_path, linked, says
):
    stand_in.publish(REPO, "w.safetensors", DATA, linked=linked)
    downloader, records = _setup(stand_in, tmp_path)
    entry = _entry()
    dest = _dest(tmp_path, entry)
    with pytest.raises(DownloadError, match=says) as caught:
        downloader.fetch(FetchRequest.for_entry(entry, dest))
    assert caught.value.expected_sha256 is not None and caught.value.expected_size is not None
    assert not dest.exists() and records.lookup(dest) is None
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(("linked", "says"), [("missing", "no X-Linked-Size"), ("git-etag", "not a sha256")])
def test_an_answer_without_a_linked_size_and_sha256_is_refused_before_any_byte(
    stand_in, tmp_path, linked, says
):
    stand_in.publish(REPO, "w.safetensors", DATA, linked=linked)
    downloader, records = _setup(stand_in, tmp_path)
    entry = _entry()
    dest = _dest(tmp_path, entry)
    with pytest.raises(HostFactsError, match=says) as caught:
        downloader.fetch(FetchRequest.for_entry(entry, dest))
    assert "give size and sha256 in the manifest entry" in str(caught.value)
    assert stand_in.cdn.requests == [] and not dest.exists() and records.lookup(dest) is None


def test_the_token_goes_to_the_hugging_face_endpoint_only_never_to_the_cdn(stand_in, tmp_path, caplog):
    stand_in.publish(REPO, "w.safetensors", DATA, token="hf_secret")
    settings = with_token(fast_settings(hf_endpoint=stand_in.endpoint), stand_in.endpoint, "hf_secret")
    caplog.set_level(logging.DEBUG)
    entry = _entry(gated=True)
    result = Downloader(settings).fetch(FetchRequest.for_entry(entry, _dest(tmp_path, entry)))
    assert result.path.read_bytes() == DATA
    hf_seen = stand_in.hf.seen(Hub.resolve_path(REPO, "w.safetensors"))
    assert {s.method for s in hf_seen} == {"HEAD", "GET"}
    assert all(s.headers.get("Authorization") == "Bearer hf_secret" for s in hf_seen)
    assert stand_in.cdn.requests and all("Authorization" not in s.headers for s in stand_in.cdn.requests)
    assert "hf_secret" not in caplog.text


def test_a_host_that_wants_a_token_not_set_names_hf_token(stand_in, tmp_path):
    stand_in.publish(REPO, "w.safetensors", DATA, token="hf_secret")
    settings = with_token(fast_settings(hf_endpoint=stand_in.endpoint), stand_in.endpoint, None)
    entry = _entry()
    with pytest.raises(GatedWeightError, match="HF_TOKEN"):
        Downloader(settings).fetch(FetchRequest.for_entry(entry, _dest(tmp_path, entry)))
    assert stand_in.cdn.requests == []


def test_a_file_already_there_without_a_record_is_hashed_once_against_the_host_not_fetched(
    stand_in, tmp_path
):
    stand_in.publish(REPO, "w.safetensors", DATA)
    downloader, records = _setup(stand_in, tmp_path)
    entry = _entry()
    dest = _dest(tmp_path, entry)
    dest.parent.mkdir(parents=True)
    dest.write_bytes(DATA)
    result = downloader.fetch(FetchRequest.for_entry(entry, dest))
    assert result.present and stand_in.cdn.requests == []
    record = records.lookup_record(dest)
    assert record is not None and record.source == "huggingface"


def test_a_file_already_there_with_other_bytes_is_fetched_again(stand_in, tmp_path):
    stand_in.publish(REPO, "w.safetensors", DATA)
    downloader, _ = _setup(stand_in, tmp_path)
    entry = _entry()
    dest = _dest(tmp_path, entry)
    dest.parent.mkdir(parents=True)
    dest.write_bytes(bytes(len(DATA)))  # right size, wrong bytes
    result = downloader.fetch(FetchRequest.for_entry(entry, dest))
    assert not result.present and dest.read_bytes() == DATA


def test_an_older_computed_record_is_upgraded_by_asking_the_host_without_hashing_again(stand_in, tmp_path):
    stand_in.publish(REPO, "w.safetensors", DATA)
    downloader, records = _setup(stand_in, tmp_path)
    entry = _entry()
    dest = _dest(tmp_path, entry)
    dest.parent.mkdir(parents=True)
    dest.write_bytes(DATA)
    records.record(dest, sha256(DATA))  # what the downloader recorded before sources, unverified
    st = dest.stat()
    dest.write_bytes(bytes(len(DATA)))  # other bytes behind the same size and mtime: only a hash would see
    os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns))
    result = downloader.fetch(FetchRequest.for_entry(entry, dest))
    assert result.present and stand_in.head_requests() and stand_in.cdn.requests == []
    assert records.lookup_record(dest).source == "huggingface"


@needs_root
def test_the_host_sizes_are_known_before_a_kit_starts_so_free_space_is_checked_for_all(stand_in, tmp_path):
    files = {f"f{i}.bin": payload(6 << 20, seed=i) for i in range(3)}
    for name, data in files.items():
        stand_in.publish(REPO, name, data)
    with tmpfs(tmp_path / "weights", "30m") as weights:
        free = shutil.disk_usage(weights).free
        downloader, _ = _setup(stand_in, tmp_path, min_free_bytes=free - (12 << 20))
        entries = [_entry(name, folder="checkpoints") for name in files]
        with pytest.raises(DiskSpaceError):
            downloader.fetch_many(FetchRequest.for_entry(e, weights / e.folder / e.name) for e in entries)
        assert len(stand_in.head_requests()) == 3 and stand_in.cdn.requests == []


def test_the_mirror_is_used_once_the_host_states_the_sha256(stand_in, tmp_path):
    stand_in.publish(REPO, "w.safetensors", DATA)
    stand_in.hf.serve(f"/mirror/{sha256(DATA)}", DATA)
    downloader, _ = _setup(stand_in, tmp_path, mirror=stand_in.hf.origin + "/mirror/{sha256}")
    entry = _entry()
    result = downloader.fetch(FetchRequest.for_entry(entry, _dest(tmp_path, entry)))
    assert result.path.read_bytes() == DATA and stand_in.cdn.requests == []


@pytest.mark.parametrize(
    ("url", "asked"),
    [
        (
            "https://huggingface.co/org/repo/resolve/main/w.safetensors",
            "http://127.0.0.1:9/hf/org/repo/resolve/main/w.safetensors",
        ),
        (
            "https://hf.co/org/repo/resolve/main/w.safetensors?x=1",
            "http://127.0.0.1:9/hf/org/repo/resolve/main/w.safetensors?x=1",
        ),
        ("https://civitai.com/api/download/models/5", "http://127.0.0.2:9/api/download/models/5"),
        ("https://example.com/w.safetensors", "https://example.com/w.safetensors"),
        (
            "https://huggingface.co.evil.com/org/repo/resolve/main/w",
            "https://huggingface.co.evil.com/org/repo/resolve/main/w",
        ),
    ],
)
def test_urls_on_the_hosts_are_asked_at_their_endpoints(url, asked):
    from weightkit.download.urls import request_url

    settings = fast_settings(hf_endpoint="http://127.0.0.1:9/hf", civitai_endpoint="http://127.0.0.2:9")
    assert request_url(url, settings) == asked


def test_the_endpoints_come_from_the_environment_and_take_the_tokens_with_them():
    from weightkit.errors import SettingsError
    from weightkit.settings import DownloadSettings

    default = DownloadSettings.from_env({"HF_TOKEN": "t"})
    assert default.hf_endpoint == "https://huggingface.co"
    assert default.credentials[0].origins == ("https://huggingface.co", "https://hf.co")
    moved = DownloadSettings.from_env({"WEIGHTS_HF_ENDPOINT": "http://127.0.0.1:8080/hf/", "HF_TOKEN": "t"})
    assert moved.hf_endpoint == "http://127.0.0.1:8080/hf"
    assert moved.credentials[0].origins == ("http://127.0.0.1:8080",)
    with pytest.raises(SettingsError, match="WEIGHTS_CIVITAI_ENDPOINT"):
        DownloadSettings.from_env({"WEIGHTS_CIVITAI_ENDPOINT": "civitai.com"})


def test_a_size_the_manifest_gives_must_be_the_one_the_host_states(stand_in, tmp_path):
    stand_in.publish(REPO, "w.safetensors", DATA)
    downloader, _ = _setup(stand_in, tmp_path)
    entry = _entry(size=len(DATA) + 1)
    with pytest.raises(
        HostFactsError, match=f"Hugging Face states {len(DATA)} bytes, the manifest {len(DATA) + 1}"
    ):
        downloader.fetch(FetchRequest.for_entry(entry, _dest(tmp_path, entry)))
    assert stand_in.cdn.requests == []
