"""CivitAI pages resolved through a stand-in of its API on loopback, for weights a workflow gives as
URLs: the latest version of a model page, the hash the API states verifying the download, the guard
asked about every request, and no token unless the caller allows one."""

from __future__ import annotations

import json
import logging

import pytest

from tests.downloadkit import fast_settings, safetensors_bytes, sha256, with_token
from tests.faultserver import FaultServer
from weightkit.civitai import civitai_ids, resolve_civitai
from weightkit.download import Downloader, FetchRequest
from weightkit.errors import CivitaiError, DownloadError
from weightkit.settings import WeightSettings
from weightkit.store import WeightStore
from weightkit.verified import VerifiedRecords

DATA = safetensors_bytes(100_000, seed=31)
FILES = [
    {"name": "s.safetensors", "primary": True, "sizeKB": 97.66, "hashes": {"SHA256": sha256(DATA).upper()}}
]


@pytest.fixture
def api():
    with FaultServer() as server:
        files = FILES
        model = {
            "id": 7,
            "name": "S",
            "type": "Checkpoint",
            "allowCommercialUse": "None",
            "modelVersions": [{"id": 71, "files": files}, {"id": 70, "files": []}],
        }
        server.serve("/api/v1/models/7", json.dumps(model).encode())
        server.serve("/api/download/models/71", DATA)
        server.serve("/api/download/models/72", DATA, corrupt=True)
        yield server


def _settings(api, token=None):
    settings = fast_settings(civitai_endpoint=api.origin)
    return with_token(settings, api.origin, token, env_var="CIVITAI_API_TOKEN")


def test_a_model_page_is_its_latest_versions_primary_file_asked_through_the_guard_without_a_token(api):
    asked: list[str] = []
    file = resolve_civitai(
        "https://civitai.com/models/7/s-model", settings=_settings(api, "civ_secret"), guard=asked.append
    )
    assert (file.download_url, file.sha256, file.folder) == (
        "https://civitai.com/api/download/models/71",
        sha256(DATA),
        "checkpoints",
    )
    assert file.non_commercial and file.size_kb == 97.66
    assert asked == [api.url("/api/v1/models/7")]
    assert all("Authorization" not in seen.headers for seen in api.requests)
    resolve_civitai(
        "https://civitai.com/models/7", settings=_settings(api, "civ_secret"), send_credentials=True
    )
    assert api.requests[-1].headers["Authorization"] == "Bearer civ_secret"


def test_the_sha256_civitai_states_verifies_the_download_like_a_host_hash(api, tmp_path):
    file = resolve_civitai("https://civitai.com/models/7", settings=_settings(api))
    records = VerifiedRecords(tmp_path / "records")
    downloader = Downloader(_settings(api), records=records)
    bad = FetchRequest.for_url(
        "https://civitai.com/api/download/models/72",
        tmp_path / "bad.safetensors",
        sha256=file.sha256,
        hash_from="civitai",
    )
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        downloader.fetch(bad)
    assert not bad.dest.exists()
    good = FetchRequest.for_url(
        file.download_url, tmp_path / "s.safetensors", sha256=file.sha256, hash_from="civitai"
    )
    result = downloader.fetch(good)
    assert result.path.read_bytes() == DATA and records.lookup_record(result.path).source == "civitai"


def test_a_refused_or_unknown_model_is_a_civitai_error_naming_the_url(api):
    def refuse(url: str) -> None:
        raise ValueError("private network")

    with pytest.raises(CivitaiError, match="private network"):
        resolve_civitai("https://civitai.com/models/7", settings=_settings(api), guard=refuse)
    with pytest.raises(CivitaiError, match="HTTP 404"):
        resolve_civitai("https://civitai.com/models/8", settings=_settings(api))
    with pytest.raises(CivitaiError, match="not a CivitAI model page"):
        resolve_civitai("https://example.com/models/7", settings=_settings(api))


@pytest.mark.parametrize(
    ("url", "ids"),
    [
        ("https://civitai.com/models/7", (7, None)),
        ("https://civitai.com/models/7/slug?modelVersionId=71", (7, 71)),
        ("https://www.civitai.com/api/download/models/71", (None, 71)),
        ("https://civitai.com/images/7", None),
    ],
)
def test_civitai_urls_name_a_model_or_a_version(url, ids):
    assert civitai_ids(url) == ids


# ---- through the store: a workflow's loader input given as a CivitAI URL ---------------------------------


@pytest.fixture
def store(api, tmp_path):
    bad = {"id": 9, "name": "B", "type": "LORA", "modelVersions": [{"id": 72, "files": FILES}]}
    api.serve("/api/v1/models/9", json.dumps(bad).encode())
    settings = WeightSettings(
        comfyui_path=tmp_path / "ComfyUI", weights_dir=tmp_path / "weights", download=_settings(api)
    )
    return WeightStore(settings)


def lora(url: str) -> dict:
    return {"1": {"class_type": "LoraLoader", "inputs": {"lora_name": url}}}


def test_a_model_page_in_a_workflow_fetches_its_latest_version_verified_by_the_stated_sha256(api, store):
    ensured = store.ensure(lora("https://civitai.com/models/7/s-model"))
    (path,) = [result.path for result in ensured.fetched.results]
    assert path.read_bytes() == DATA and store.records.lookup_record(path).source == "civitai"
    assert [r.path for r in api.requests] == ["/api/v1/models/7", "/api/download/models/71"]


def test_a_download_that_contradicts_the_stated_sha256_never_gets_its_name(store):
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        store.ensure(lora("https://civitai.com/models/9"))
    assert not [p for p in (store.settings.weights_dir / "loras").iterdir() if not p.name.startswith(".")]


def test_a_version_the_api_cannot_tell_is_still_fetched_and_a_model_page_is_refused(api, store, caplog):
    caplog.set_level(logging.WARNING)
    ensured = store.ensure(lora("https://civitai.com/api/download/models/71"))
    assert ensured.fetched.results[0].path.read_bytes() == DATA
    assert "without a sha256 to check it against" in caplog.text
    with pytest.raises(CivitaiError, match="HTTP 404"):
        store.ensure(lora("https://civitai.com/models/8"))
