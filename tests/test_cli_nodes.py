"""`python -m weightkit nodes|plan` with custom nodes, as real processes: which packs a workflow needs, what
they load, and a plan that says when it cannot know a workflow's weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.nodepacks import GIT_ENV, PackRepos, git, write_lock

ROOT = Path(__file__).resolve().parent.parent
SHA = "cd" * 32
TINY_WEIGHT = {
    "name": "tiny.safetensors",
    "folder": "tiny_models",
    "size": 1234,
    "sha256": SHA,
    "urls": ["https://example.com/tiny.safetensors"],
    "license": "mit",
    "non_commercial": False,
    "gated": False,
}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("CUSTOM_NODES_", "COMFYUI_", "WEIGHTS_"))
    }
    base.update(GIT_ENV)
    base.update(
        PYTHONPATH=str(ROOT),
        COMFYUI_PATH=str(tmp_path / "ComfyUI"),
        WEIGHTS_DIR=str(tmp_path / "weights"),
        CUSTOM_NODES_LOCK=str(tmp_path / "custom_nodes.json"),
    )
    return base


def weightkit(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "weightkit", *args], env=env, capture_output=True, text=True, timeout=60
    )


def tiny_pack(commit: str = "e" * 40, **fields: object) -> dict[str, object]:
    body: dict[str, object] = {
        "name": "tiny-loader",
        "repository": "https://github.com/test/tiny-loader.git",
        "commit": commit,
        "install": True,
        "classes": ["TinyLoader", "TinyRunner", "TinyPicker"],
        "loaders": {"TinyLoader": {"model": "tiny_models"}},
        "folders": {"tiny_models": {"extensions": [".safetensors"]}},
        "weights": [TINY_WEIGHT],
        "needs": {"TinyRunner": ["tiny_models/tiny.safetensors"]},
        "hidden_weights": {"TinyPicker": "picks a file by preset"},
    }
    return {**body, **fields}


def workflow(tmp_path: Path, nodes: dict[str, object]) -> str:
    path = tmp_path / "workflow.json"
    path.write_text(json.dumps(nodes))
    return str(path)


LOADER = {"1": {"class_type": "TinyLoader", "inputs": {"model": "tiny.safetensors"}}}


def test_plan_finds_a_weight_a_pack_loader_names_in_the_packs_own_folder(tmp_path, env):
    write_lock(tmp_path / "custom_nodes.json", [tiny_pack()])
    result = weightkit(env, "plan", workflow(tmp_path, LOADER))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert (
        lines[1].startswith("fetch  tiny_models/tiny.safetensors") and "node 1 TinyLoader.model" in lines[1]
    )
    assert lines[-1] == "Would fetch 1 file, 1.2 kB."
    present = tmp_path / "weights" / "tiny_models" / "tiny.safetensors"
    present.parent.mkdir(parents=True)
    present.write_bytes(b"\0" * 1234)
    again = weightkit(env, "plan", workflow(tmp_path, LOADER))
    assert again.returncode == 0 and again.stdout.splitlines()[1].startswith(
        "present  tiny_models/tiny.safetensors"
    )


def test_plan_counts_what_a_pack_class_loads_when_it_runs(tmp_path, env):
    write_lock(tmp_path / "custom_nodes.json", [tiny_pack()])
    result = weightkit(env, "plan", workflow(tmp_path, {"7": {"class_type": "TinyRunner", "inputs": {}}}))
    assert result.returncode == 0, result.stderr
    assert (
        "tiny_models/tiny.safetensors" in result.stdout
        and "TinyRunner.(loaded when it runs)" in result.stdout
    )


def test_plan_says_which_nodes_pick_their_own_weights(tmp_path, env):
    write_lock(tmp_path / "custom_nodes.json", [tiny_pack()])
    result = weightkit(env, "plan", workflow(tmp_path, {"3": {"class_type": "TinyPicker", "inputs": {}}}))
    assert result.returncode == 0, result.stderr
    assert "Node 3 (TinyPicker): picks a file by preset; those files are not counted here." in result.stdout
    assert (
        result.stdout.splitlines()[-1]
        == "Would fetch 0 files, 0 B (and what the nodes above load themselves)."
    )


def test_plan_cannot_judge_a_class_whose_pack_is_not_in_the_lock(tmp_path, env):
    write_lock(tmp_path / "custom_nodes.json", [tiny_pack()])
    nodes = {
        **LOADER,
        "2": {"class_type": "IPAdapterModelLoader", "inputs": {"ipadapter_file": "x.safetensors"}},
    }
    result = weightkit(env, "plan", workflow(tmp_path, nodes))
    assert result.returncode == 1
    assert (
        "Cannot know all of this workflow's weights: it uses IPAdapterModelLoader (node 2) from "
        "ComfyUI_IPAdapter_plus, which custom_nodes.json lacks" in result.stdout
    )
    assert result.stdout.splitlines()[-1] == "Would fetch at least 1 file, 1.2 kB."


def test_plan_json_marks_unknown_weights_as_not_ok(tmp_path, env):
    write_lock(tmp_path / "custom_nodes.json", [tiny_pack()])
    result = weightkit(
        env, "plan", "--json", workflow(tmp_path, {"1": {"class_type": "NoSuchNode", "inputs": {}}})
    )
    assert result.returncode == 1
    plan = json.loads(result.stdout)
    assert plan["fetch_count"] == 0 and not plan["weights_known"] and not plan["ok"]
    assert plan["nodes"]["unknown_classes"] == ["NoSuchNode"] and "Cannot know" in result.stderr


def test_nodes_lists_packs_and_whether_they_are_installed(tmp_path, env):
    repos = PackRepos(tmp_path / "repos")
    commit = repos.commit("tiny-loader", {"__init__.py": "NODE_CLASS_MAPPINGS = {}\n"})
    write_lock(tmp_path / "custom_nodes.json", [tiny_pack(commit)])
    custom_nodes = tmp_path / "ComfyUI" / "custom_nodes"
    custom_nodes.mkdir(parents=True)
    missing = weightkit(env, "nodes", workflow(tmp_path, LOADER))
    assert missing.returncode == 1
    assert "TinyLoader  1     tiny-loader  in lock  not installed" in missing.stdout
    assert "`python -m nodekit install --only tiny-loader`" in missing.stdout
    git("clone", "--quiet", str(repos.path("tiny-loader")), str(custom_nodes / "tiny-loader"), cwd=tmp_path)
    installed = weightkit(env, "nodes", workflow(tmp_path, LOADER))
    assert installed.returncode == 0, installed.stdout
    assert "TinyLoader  1     tiny-loader  in lock  installed" in installed.stdout


def test_nodes_says_what_to_add_for_a_pack_outside_the_lock(tmp_path, env):
    write_lock(tmp_path / "custom_nodes.json", [tiny_pack()])
    nodes = {
        "4": {"class_type": "Florence2Run", "inputs": {}},
        "5": {"class_type": "NoSuchNode", "inputs": {}},
    }
    result = weightkit(env, "nodes", workflow(tmp_path, nodes))
    assert result.returncode == 1
    assert "Florence2Run  4     ComfyUI-Florence2  not in lock" in result.stdout
    assert (
        'Add ComfyUI-Florence2 (https://github.com/kijai/ComfyUI-Florence2) to custom_nodes.json: {"name": '
        in (result.stdout)
    )
    assert "No known pack provides NoSuchNode (node 5)" in result.stdout
    as_json = json.loads(weightkit(env, "nodes", "--json", workflow(tmp_path, nodes)).stdout)
    assert as_json["not_in_lock"] == ["ComfyUI-Florence2"] and as_json["unknown_classes"] == ["NoSuchNode"]


def test_a_workflow_of_core_nodes_needs_no_pack(tmp_path, env):
    write_lock(tmp_path / "custom_nodes.json", [tiny_pack()])
    core = {"1": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}}}
    result = weightkit(env, "nodes", workflow(tmp_path, core))
    assert result.returncode == 0 and "the workflow uses only ComfyUI's own node classes" in result.stdout


def test_the_default_lock_knows_controlnet_aux_annotators(tmp_path, env):
    del env["CUSTOM_NODES_LOCK"]
    pose = {"1": {"class_type": "OpenposePreprocessor", "inputs": {"image": ["2", 0]}}}
    result = weightkit(env, "plan", workflow(tmp_path, pose))
    assert result.returncode == 0, result.stderr
    assert "annotators/lllyasviel/Annotators/body_pose_model.pth" in result.stdout
    assert "Would fetch 3 files" in result.stdout


def test_a_broken_lock_is_bad_input_naming_pack_and_field(tmp_path, env):
    write_lock(tmp_path / "custom_nodes.json", [tiny_pack(commit="main")])
    result = weightkit(env, "list")
    assert result.returncode == 2
    assert "pack tiny-loader, field 'commit'" in result.stderr
