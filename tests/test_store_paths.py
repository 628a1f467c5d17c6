"""WeightStore and the paths it is given: a relative weights directory, `folder=URL` folders that must stay
inside it, renames kept per folder, and preloads that believe a verified record over a bare size.

Weights are served by a real HTTP server on 127.0.0.1, in temporary directories.
"""

from __future__ import annotations

import pytest

from tests.downloadkit import fast_settings, safetensors_bytes
from tests.faultserver import FaultServer
from tests.manifest_entries import entry
from weightkit.errors import UnknownWeightError
from weightkit.manifest_file import parse_manifest
from weightkit.settings import WeightSettings
from weightkit.store import WeightStore, apply_renames
from weightkit.urlforms import stable_weight_name

LORA = safetensors_bytes(40_000, seed=7)
VAE = safetensors_bytes(30_000, seed=8)


@pytest.fixture
def server():
    with FaultServer() as running:
        running.serve("/loras/style.safetensors", LORA)
        running.serve("/vae/ae.safetensors", VAE)
        yield running


@pytest.fixture
def store(tmp_path, server):
    manifest = parse_manifest(
        {
            "schema_version": 1,
            "weights": [
                entry("style.safetensors", "loras", LORA, server.url("/loras/style.safetensors")),
                entry("ae.safetensors", "vae", VAE, server.url("/vae/ae.safetensors")),
            ],
        }
    )
    settings = WeightSettings(
        comfyui_path=tmp_path / "ComfyUI", weights_dir=tmp_path / "weights", download=fast_settings()
    )
    return WeightStore(settings, manifest=manifest)


def put(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "folder", ["<tmp>/escaped", "../../up", "loras/../../up", "loras\\x", ".weightkit", "loras/.hidden", ""]
)
def test_a_folder_equals_url_folder_outside_the_weights_dir_is_refused_naming_it(
    store, server, tmp_path, folder
):
    folder = folder.replace("<tmp>", str(tmp_path))  # an absolute path
    url = server.url("/loras/other.safetensors")
    with pytest.raises(UnknownWeightError) as caught:
        store.preload(names=[f"{folder}={url}"])
    if folder:
        assert f"The folder '{folder}' before '='" in str(caught.value)
    assert "inside the weights directory" in str(caught.value) or not folder
    assert server.requests == [] and not (tmp_path / "up").exists() and not (tmp_path / "escaped").exists()


def test_a_folder_equals_url_with_a_subfolder_lands_inside_the_weights_dir(store, server, tmp_path):
    server.serve("/mine/other.safetensors", LORA)
    url = server.url("/mine/other.safetensors")
    store.preload(names=[f"loras/styles={url}"])
    assert (tmp_path / "weights" / "loras" / "styles" / stable_weight_name(url)).read_bytes() == LORA


def test_one_url_in_two_folders_is_renamed_to_each_folders_file(store, server, tmp_path):
    url = server.url("/loras/style.safetensors")  # the manifest's LoRA, and here a checkpoint too
    put(tmp_path / "weights" / "loras" / "style.safetensors", LORA)
    put(tmp_path / "weights" / "checkpoints" / stable_weight_name(url), LORA)
    workflow = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": url}},
        "2": {"class_type": "LoraLoader", "inputs": {"lora_name": url, "model": ["1", 0]}},
    }
    renames = store.check(workflow).renames
    renamed = apply_renames(workflow, renames, loaders=store.manifest.loader_map)
    assert renamed["1"]["inputs"]["ckpt_name"] == stable_weight_name(url)
    assert renamed["2"]["inputs"]["lora_name"] == "style.safetensors"
    assert store.check(renamed).ok


def test_preload_fetches_a_file_found_elsewhere_whose_record_says_its_sha256_is_wrong(
    store, server, tmp_path
):
    elsewhere = put(tmp_path / "ComfyUI" / "models" / "vae" / "ae.safetensors", bytes(len(VAE)))
    store.records.sha256(elsewhere)  # hashed once before: the record holds a sha256 not the manifest's
    summary = store.preload(names=["ae.safetensors"])
    assert summary.present == 0 and (tmp_path / "weights" / "vae" / "ae.safetensors").read_bytes() == VAE
