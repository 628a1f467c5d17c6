"""Packs nodekit installs, loaded by ComfyUI (the stand-in, or a real one with COMFYUI_PATH): a loader
listing a weight from its own folder in the weights directory, a pack that fails to import named with
ComfyUI's message in the setup line and in the sentence for its missing class."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from comfyrun.nodeclasses import ImportFailures
from nodekit.classes import PackIndex
from nodekit.lock import load_lock
from nodekit.required import missing_class_hint
from nodekit.status import pack_states, status_line
from nodekit.weights import manifest_with_lock
from tests.nodepacks import GIT_ENV, PackRepos, pack_entry, write_lock
from tests.standin_process import attached_url, start_comfyui
from tests.test_nodekit_install import BROKEN_PACK, LOADER_PACK
from weightkit.modelpaths import weight_folders, write_extra_model_paths
from weightkit.settings import WeightSettings

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.skipif(attached_url() is not None, reason="needs a ComfyUI this test starts"),
]


def test_installed_packs_load_in_comfyui_and_a_failed_import_is_explained(tmp_path):
    repos = PackRepos(tmp_path / "repos")
    loader = repos.commit("tiny-loader", LOADER_PACK)
    broken = repos.commit("tiny-broken", BROKEN_PACK)
    lock_path = write_lock(
        tmp_path / "custom_nodes.json",
        [
            pack_entry(
                repos,
                "tiny-loader",
                loader,
                classes=["TinyLoader"],
                loaders={"TinyLoader": {"model": "tiny_models"}},
                folders={"tiny_models": {"extensions": []}},
            ),
            pack_entry(repos, "tiny-broken", broken, classes=["TinyBroken"]),
        ],
    )
    base = tmp_path / "comfy"
    base.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "CUSTOM_NODES_"))}
    env.update(GIT_ENV, PYTHONPATH=str(ROOT), COMFYUI_PATH=str(base), CUSTOM_NODES_LOCK=str(lock_path))
    env["CUSTOM_NODES_GIT_BASE"] = str(repos.root)
    installed = subprocess.run(
        [sys.executable, "-m", "nodekit", "install"], env=env, capture_output=True, text=True, timeout=120
    )
    assert installed.returncode == 0, installed.stderr

    lock = load_lock(lock_path)
    weights = tmp_path / "weights"
    (weights / "tiny_models").mkdir(parents=True)
    (weights / "tiny_models" / "tiny.safetensors").write_bytes(b"tiny")
    manifest = manifest_with_lock(WeightSettings(weights_dir=weights), lock)
    config = write_extra_model_paths(tmp_path / "extra_model_paths.yaml", weights, weight_folders(manifest))
    with start_comfyui(base, args=["--extra-model-paths-config", str(config)]) as comfy:
        with urllib.request.urlopen(f"{comfy.url}/object_info", timeout=30) as answer:
            object_info = json.load(answer)
        log = comfy.log()
    assert object_info["TinyLoader"]["input"]["required"]["model"][0] == ["tiny.safetensors"]
    assert "TinyBroken" not in object_info

    failures = ImportFailures()
    for line in log.splitlines():
        failures.feed(line)
    assert failures.as_dict() == {"tiny-broken": "No module named 'tiny_missing_dependency'"}
    line = status_line(pack_states(lock.packs, base / "custom_nodes", import_failures=failures.as_dict()))
    assert line == (
        f"custom nodes: 1 of 2 ok: tiny-broken {broken[:7]} failed to import: No module named "
        f"'tiny_missing_dependency'; tiny-loader {loader[:7]} ok"
    )
    hint = missing_class_hint("TinyBroken", PackIndex(lock), failures.as_dict())
    assert hint == (
        f"TinyBroken comes from the pack tiny-broken ({repos.url('tiny-broken')}), which is installed but "
        "failed to import: No module named 'tiny_missing_dependency'"
    )
