"""WeightStore: check, ensure (fetch on demand or fail fast), aliases, preload, fetch by URL, repair.

Weights are served by a real HTTP server on 127.0.0.1 and described by a test manifest that points at it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.downloadkit import fast_settings, payload, safetensors_bytes, sha256
from tests.faultserver import FaultServer
from weightkit.errors import (
    DownloadError,
    MissingWeightsError,
    RepairError,
    UnknownKitError,
    UnknownWeightError,
)
from weightkit.manifest_file import parse_manifest
from weightkit.settings import WeightSettings
from weightkit.store import WeightStore, apply_renames
from weightkit.urlforms import stable_weight_name

LORA = safetensors_bytes(40_000, seed=1)
VAE = safetensors_bytes(30_000, seed=2)
UPSCALER = payload(20_000, seed=3)


@pytest.fixture
def server():
    with FaultServer() as running:
        running.serve("/loras/style.safetensors", LORA)
        running.serve("/vae/ae.safetensors", VAE)
        running.serve("/up/x2.pth", UPSCALER)
        yield running


def weight(name: str, folder: str, data: bytes, url: str, **extra) -> dict:
    return {
        "name": name,
        "folder": folder,
        "size": len(data),
        "sha256": sha256(data),
        "urls": [url],
        "license": "mit",
        "non_commercial": False,
        "gated": False,
        **extra,
    }


@pytest.fixture
def store(tmp_path, server):
    manifest = parse_manifest(
        {
            "schema_version": 1,
            "kits": {
                "tiny": {
                    "description": "test kit",
                    "weights": ["vae/ae.safetensors", "upscale_models/x2.pth"],
                }
            },
            "loaders": {},
            "weights": [
                weight(
                    "style.safetensors",
                    "loras",
                    LORA,
                    server.url("/loras/style.safetensors"),
                    aliases=["style_v1.safetensors"],
                ),
                weight("ae.safetensors", "vae", VAE, server.url("/vae/ae.safetensors")),
                weight("x2.pth", "upscale_models", UPSCALER, server.url("/up/x2.pth")),
            ],
        }
    )
    settings = WeightSettings(
        comfyui_path=tmp_path / "ComfyUI", weights_dir=tmp_path / "weights", download=fast_settings()
    )
    return WeightStore(settings, manifest=manifest)


def lora_workflow(name: str = "style.safetensors") -> dict:
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "unknown.safetensors"}},
        "2": {"class_type": "LoraLoader", "inputs": {"lora_name": name, "model": ["1", 0], "clip": ["1", 1]}},
        "3": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
    }


def test_ensure_fetches_what_is_missing_then_checks_by_stat_only(store, server, tmp_path):
    (tmp_path / "ComfyUI" / "models" / "checkpoints").mkdir(parents=True)
    (tmp_path / "ComfyUI" / "models" / "checkpoints" / "unknown.safetensors").write_bytes(b"mine")
    result = store.ensure(lora_workflow())
    assert result.report.ok and result.fetched is not None and result.fetched.files == 2
    assert (tmp_path / "weights" / "loras" / "style.safetensors").read_bytes() == LORA
    served = server.bytes_served()
    again = store.ensure(lora_workflow())
    assert again.fetched is None and again.already_present == 3
    assert server.bytes_served() == served  # nothing fetched the second time


def test_strict_mode_fails_fast_naming_each_missing_file_and_how_to_preload(store, server, tmp_path):
    (tmp_path / "ComfyUI" / "models" / "checkpoints").mkdir(parents=True)
    (tmp_path / "ComfyUI" / "models" / "checkpoints" / "unknown.safetensors").write_bytes(b"mine")
    with pytest.raises(MissingWeightsError) as info:
        store.ensure(lora_workflow(), fetch_missing=False)
    message = str(info.value)
    assert "style.safetensors" in message and "ae.safetensors" in message and "LoraLoader" in message
    assert "PRELOAD" in message or "BASE_MODEL_KIT" in message
    assert server.requests == []


def test_a_weight_the_manifest_does_not_know_is_not_fetched_and_is_named(store, server):
    with pytest.raises(MissingWeightsError, match=r"unknown\.safetensors"):
        store.ensure(lora_workflow())
    assert server.requests == []  # fails before fetching anything


def test_an_alias_is_fetched_under_the_manifest_name_and_the_workflow_renamed(store, tmp_path):
    (tmp_path / "ComfyUI" / "models" / "checkpoints").mkdir(parents=True)
    (tmp_path / "ComfyUI" / "models" / "checkpoints" / "unknown.safetensors").write_bytes(b"mine")
    workflow = lora_workflow("style_v1.sft")
    result = store.ensure(workflow)
    assert result.renames == {("loras", "style_v1.sft"): "style.safetensors"}
    renamed = apply_renames(workflow, result.renames)
    assert renamed["2"]["inputs"]["lora_name"] == "style.safetensors"
    assert workflow["2"]["inputs"]["lora_name"] == "style_v1.sft"  # the caller's workflow is untouched
    assert store.check(renamed).ok


def test_preload_kit_and_names_reports_present_files(store, tmp_path):
    first = store.preload(kits=["tiny"])
    assert first.files == 2 and first.present == 0 and first.bytes == len(VAE) + len(UPSCALER)
    second = store.preload(kits=["tiny"], names=["loras/style.safetensors"])
    assert second.files == 3 and second.present == 2


def test_preload_counts_a_file_comfyui_already_has_elsewhere(store, tmp_path, server):
    models = tmp_path / "ComfyUI" / "models" / "vae"
    models.mkdir(parents=True)
    (models / "ae.safetensors").write_bytes(VAE)
    summary = store.preload(names=["ae.safetensors"])
    assert summary.present == 1 and server.requests == []


def test_preload_refuses_unknown_kits_and_names(store):
    with pytest.raises(UnknownKitError, match="tiny"):
        store.preload(kits=["nope"])
    with pytest.raises(UnknownWeightError, match=r"style\.safetensors"):
        store.preload(names=["styel.safetensors"])


def test_preload_of_a_workflow_needing_an_unknown_weight_fails_before_fetching(store, server):
    with pytest.raises(MissingWeightsError, match=r"unknown\.safetensors"):
        store.preload(workflows=[json.dumps(lora_workflow())])
    assert server.requests == []


def url_lora(url: str) -> dict:
    return {"1": {"class_type": "LoraLoader", "inputs": {"lora_name": url}}}


def test_a_url_weight_is_fetched_with_its_hash_recorded_and_is_a_stat_the_second_time(
    store, server, tmp_path
):
    server.serve("/mine/style.safetensors", LORA)  # a URL the manifest does not list
    url = server.url("/mine/style.safetensors")
    first = store.ensure(url_lora(url))
    path = tmp_path / "weights" / "loras" / stable_weight_name(url)
    assert path.read_bytes() == LORA and store.records.lookup(path) == sha256(LORA)
    assert first.fetched.files == 1 and first.fetched.bytes == len(LORA)
    served = server.bytes_served()
    second = store.ensure(url_lora(url))
    assert second.fetched is None and server.bytes_served() == served


def test_preload_weights_given_as_folder_equals_url_land_under_their_stable_name(store, server, tmp_path):
    server.serve("/mine/style.safetensors", LORA)
    url = server.url("/mine/style.safetensors")
    summary = store.preload(names=[f"loras={url}"])
    assert (tmp_path / "weights" / "loras" / stable_weight_name(url)).read_bytes() == LORA
    assert summary.files == 1 and summary.bytes == len(LORA)
    assert store.ensure(url_lora(url)).fetched is None  # what predict then finds


def test_preload_weight_url_the_manifest_lists_is_that_weight(store, server, tmp_path):
    store.preload(names=[server.url("/vae/ae.safetensors")])
    assert (tmp_path / "weights" / "vae" / "ae.safetensors").read_bytes() == VAE


def test_preload_weight_url_unknown_to_the_manifest_needs_its_folder(store, server):
    with pytest.raises(UnknownWeightError, match=r"write it as folder=URL, such as loras="):
        store.preload(names=[server.url("/elsewhere/x.safetensors")])
    assert server.requests == []


def test_repair_quarantines_the_broken_file_and_fetches_a_verified_copy(store, tmp_path):
    broken = tmp_path / "ComfyUI" / "models" / "vae" / "ae.safetensors"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(VAE[:1000])
    path = store.repair("ae.safetensors", "vae")
    assert path == tmp_path / "weights" / "vae" / "ae.safetensors" and path.read_bytes() == VAE
    assert not broken.exists()
    quarantined = list((tmp_path / "weights" / ".weightkit" / "quarantine" / "vae").iterdir())
    assert len(quarantined) == 1 and quarantined[0].read_bytes() == VAE[:1000]
    assert store.records.lookup(path) == sha256(VAE)


def test_repair_of_a_file_the_manifest_does_not_know_moves_nothing(store, tmp_path):
    mine = tmp_path / "weights" / "loras" / "mine.safetensors"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"x")
    with pytest.raises(RepairError, match="not in the weights manifest"):
        store.repair("mine.safetensors", "loras")
    assert mine.read_bytes() == b"x"


def test_extra_model_paths_file_points_comfyui_at_the_weights_dir(store, tmp_path):
    path = store.write_extra_model_paths(tmp_path / "extra.yaml")
    text = Path(path).read_text()
    assert str(tmp_path / "weights") in text and "is_default: true" in text and "upscale_models" in text


def test_a_url_weight_asks_the_guard_about_every_redirect_hop(store, server, tmp_path):
    asked: list[str] = []

    def guard(url: str) -> None:
        asked.append(url)
        if "/loras/" in url:
            raise ValueError("private address")

    server.serve("/moved", b"", redirect=server.url("/loras/style.safetensors"))
    with pytest.raises(DownloadError, match="refused") as info:
        store.ensure(url_lora(server.url("/moved")), url_guard=guard)
    assert asked == [server.url("/moved"), server.url("/loras/style.safetensors")]
    assert "private address" in str(info.value)
    assert not server.seen("/loras/style.safetensors")  # the refused hop was never requested
    assert not list((tmp_path / "weights" / "loras").glob("[!.]*"))
