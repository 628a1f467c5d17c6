"""Custom nodes end to end through the real Cog runtime: a pack pinned in a test lock, installed by
`python -m nodekit install` from a local git repository, loaded by ComfyUI (the stand-in, or a real one
with COMFYUI_PATH), its loader's weight fetched into the folder it registers, its run-time weight (one it
opens on its own) fetched before the run, and node classes ComfyUI lacks refused before any download."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cog_deployment import REAL_COMFYUI, deployment, entry
from tests.cog_server import CogServer, data_uri_bytes
from tests.downloadkit import payload
from tests.faultserver import FaultServer
from tests.nodepacks import GIT_ENV, PackRepos, pack_entry, write_lock
from tests.standin_process import attached_url

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.skipif(attached_url() is not None, reason="installs packs into a ComfyUI it starts"),
]

TINY = payload(3_000, seed=11)  # what the pack's loader loads, named by the workflow
RUNTIME = payload(2_000, seed=12)  # what the pack opens on its own when it runs
PACK = {
    "__init__.py": """
import hashlib
import os

import folder_paths

folder_paths.add_model_folder_path("tiny_models", os.path.join(folder_paths.models_dir, "tiny_models"))


def _sha(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


class TinyWeightLoader:
    RETURN_TYPES = ("STRING",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"weight_name": (folder_paths.get_filename_list("tiny_models"),)}}

    def load(self, weight_name):
        return ("loaded " + _sha(folder_paths.get_full_path_or_raise("tiny_models", weight_name)),)


class TinyRuntime:
    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"strength": ("FLOAT", {"default": 1.0})}}

    def run(self, strength):  # like an annotator: its file is where the pack's setting says
        return ("runtime " + _sha(os.path.join(os.environ["TINY_RUNTIME_DIR"], "detector.bin")),)


class TinyShowText:
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "show"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"forceInput": True})}}

    def show(self, text):
        return {"ui": {"text": [text]}}


NODE_CLASS_MAPPINGS = {
    "TinyWeightLoader": TinyWeightLoader,
    "TinyRuntime": TinyRuntime,
    "TinyShowText": TinyShowText,
}
"""
}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        running.serve("/w/tiny.bin", TINY)
        running.serve("/w/detector.bin", RUNTIME)
        yield running


@pytest.fixture(scope="module")
def cog(tmp_path_factory, server) -> Iterator[CogServer]:
    base = tmp_path_factory.mktemp("packs")
    repos = PackRepos(base / "repos")
    commit = repos.commit("tiny-nodes", PACK)
    runtime = entry("detector.bin", "tiny_runtime", RUNTIME, server.url("/w/detector.bin"))
    lock = write_lock(
        base / "custom_nodes.json",
        [
            pack_entry(
                repos,
                "tiny-nodes",
                commit,
                classes=["TinyWeightLoader", "TinyRuntime", "TinyShowText"],
                loaders={"TinyWeightLoader": {"weight_name": "tiny_models"}},
                folders={"tiny_models": {"extensions": []}},
                env={"TINY_RUNTIME_DIR": "{weights_dir}/tiny_runtime"},
                weights=[runtime],
                needs={"TinyRuntime": ["tiny_runtime/detector.bin"]},
            )
        ],
    )
    comfy = base / "ComfyUI"  # where the installer puts packs; ComfyUI is told of it below
    (comfy / "custom_nodes").mkdir(parents=True)
    install_env = {k: v for k, v in os.environ.items() if not k.startswith(("CUSTOM_NODES_", "COMFYUI_"))}
    install_env.update(
        GIT_ENV,
        PYTHONPATH=str(ROOT),
        COMFYUI_PATH=str(comfy),
        CUSTOM_NODES_LOCK=str(lock),
        CUSTOM_NODES_GIT_BASE=str(repos.root),
    )
    installed = subprocess.run(
        [sys.executable, "-m", "nodekit", "install"], env=install_env, capture_output=True, text=True
    )
    assert installed.returncode == 0, installed.stderr
    paths = base / "extra_model_paths.yaml"
    paths.write_text(f"packs:\n  custom_nodes: {comfy / 'custom_nodes'}\n")
    env = deployment(
        base / "deployment", server, EXTRA_MODEL_PATHS_CONFIG=str(paths), CUSTOM_NODES_LOCK=str(lock)
    )
    manifest = json.loads(Path(env["WEIGHTS_MANIFEST_EXTRA"]).read_text())
    manifest["weights"].append(entry("tiny.bin", "tiny_models", TINY, server.url("/w/tiny.bin")))
    Path(env["WEIGHTS_MANIFEST_EXTRA"]).write_text(json.dumps(manifest))
    with CogServer(env, log_path=base / "cog.log") as running:
        running.commit = commit
        running.weights = base / "deployment" / "weights"
        yield running


def texts(prediction: dict) -> list[str]:
    assert prediction["status"] == "succeeded", prediction.get("error") or prediction
    return sorted(data_uri_bytes(uri).decode() for uri in prediction["output"])


def test_setup_says_the_pinned_pack_is_installed(cog):
    assert cog.health()["status"] == "READY", cog.log()
    assert f"tiny-nodes {cog.commit[:7]} ok" in cog.log()


def test_a_packs_loader_weight_and_its_run_time_weight_are_fetched_then_used(cog, server):
    workflow = {
        "1": {"class_type": "TinyWeightLoader", "inputs": {"weight_name": "tiny.bin"}},
        "2": {"class_type": "TinyShowText", "inputs": {"text": ["1", 0]}},
        "3": {"class_type": "TinyRuntime", "inputs": {"strength": 0.5}},
        "4": {"class_type": "TinyShowText", "inputs": {"text": ["3", 0]}},
    }
    prediction = cog.predict({"workflow_json": json.dumps(workflow)})
    assert texts(prediction) == [f"loaded {sha(TINY)}", f"runtime {sha(RUNTIME)}"]
    assert (cog.weights / "tiny_models" / "tiny.bin").read_bytes() == TINY
    assert (cog.weights / "tiny_runtime" / "detector.bin").read_bytes() == RUNTIME
    assert prediction["metrics"]["weights_fetched"] == 2


def test_a_misspelt_pack_class_fails_before_any_download_naming_the_nearest(cog, server):
    served = server.bytes_served()
    workflow = {"1": {"class_type": "TinyWeightLoadr", "inputs": {"weight_name": "other.bin"}}}
    prediction = cog.predict({"workflow_json": json.dumps(workflow)})
    assert prediction["status"] == "failed"
    assert "did you mean 'TinyWeightLoader'" in prediction["error"]
    assert server.bytes_served() == served


@pytest.mark.skipif(REAL_COMFYUI is not None, reason="a real ComfyUI with torchaudio has the audio classes")
def test_a_class_of_comfyui_itself_that_this_comfyui_lacks_is_said_to_be_comfyuis_own(cog, server):
    served = server.bytes_served()
    workflow = {"1": {"class_type": "SaveAudioOpus", "inputs": {"filename_prefix": "a"}}}  # not recorded
    prediction = cog.predict({"workflow_json": json.dumps(workflow)})
    assert prediction["status"] == "failed"
    assert "SaveAudioOpus is one of ComfyUI's own classes" in prediction["error"]
    assert "not the pinned ComfyUI" in prediction["error"] and "torchaudio" in prediction["error"]
    assert server.bytes_served() == served


def test_a_class_of_a_pack_not_in_the_lock_names_the_pack_its_repository_and_what_to_add(cog, server):
    served = server.bytes_served()
    workflow = {"1": {"class_type": "IPAdapterModelLoader", "inputs": {"ipadapter_file": "x.safetensors"}}}
    prediction = cog.predict({"workflow_json": json.dumps(workflow)})
    assert prediction["status"] == "failed"
    error = prediction["error"]
    assert "ComfyUI_IPAdapter_plus" in error and "github.com/cubiq/ComfyUI_IPAdapter_plus" in error
    assert "custom_nodes.json" in error and "nodekit install" in error
    assert server.bytes_served() == served
