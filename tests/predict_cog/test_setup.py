"""Setup: preloading kits and workflows, Cog's weights tar, failures that stop it, and stopping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cog_deployment import TINY, USER_LORA, deployment, upscale, wait_for
from tests.cog_server import CogServer

pytestmark = pytest.mark.comfyui


def test_setup_preloads_the_kit_and_the_workflow_weights_with_a_summary(cog, weights_server):
    health = cog.health()
    assert health["status"] == "READY", cog.log()
    weights = cog.base / "weights" / "upscale_models"
    assert (weights / "tiny_compact_x2.safetensors").read_bytes() == TINY
    assert (weights / "by_workflow.safetensors").read_bytes() == TINY
    assert "preloaded 2 weight file(s): 0 already present" in cog.log()
    assert "setup done in" in cog.log()


def test_setup_unpacks_cogs_weights_tar_into_the_model_folders(cog):
    assert (cog.base / "weights" / "loras" / "user_trained.safetensors").read_bytes() == USER_LORA


def test_setup_with_an_unknown_kit_fails_naming_the_known_ones(tmp_path, weights_server):
    env = deployment(tmp_path, weights_server, BASE_MODEL_KIT="test-upscale,nope")
    with CogServer(env, log_path=tmp_path / "cog.log") as server:
        assert server.health()["status"] == "SETUP_FAILED"
        assert "Unknown model kit 'nope'" in server.log() and "test-upscale" in server.log()


def test_setup_whose_download_fails_fails_unless_best_effort(tmp_path, weights_server):
    env = deployment(tmp_path / "strict", weights_server, BASE_MODEL_KIT="test-broken")
    with CogServer(env, log_path=tmp_path / "strict.log") as server:
        assert server.health()["status"] == "SETUP_FAILED"
        assert "upscale_models/gone.safetensors" in server.log() and "404" in server.log()
    assert not (tmp_path / "strict" / "weights" / "upscale_models" / "gone.safetensors").exists()
    env = deployment(
        tmp_path / "lenient", weights_server, BASE_MODEL_KIT="test-broken", PRELOAD_BEST_EFFORT="true"
    )
    with CogServer(env, log_path=tmp_path / "lenient.log") as server:
        assert server.health()["status"] == "READY"
        assert "preloading BASE_MODEL_KIT failed, going on (PRELOAD_BEST_EFFORT)" in server.log()


@pytest.mark.parametrize(
    ("content", "words"),
    [('{"1": {"class_type": ', "not valid JSON"), (None, "neither a file nor a folder")],
    ids=["broken-json", "no-such-file"],
)
def test_setup_with_an_unreadable_preload_workflow_fails_saying_why(tmp_path, weights_server, content, words):
    workflow = tmp_path / "preload.json"
    if content is not None:
        workflow.write_text(content)
    env = deployment(tmp_path / "deployment", weights_server, PRELOAD_WORKFLOW=str(workflow))
    with CogServer(env, log_path=tmp_path / "cog.log") as server:
        assert server.health()["status"] == "SETUP_FAILED"
        assert "Setup could not preload" in server.log() and words in server.log()


def test_stopping_the_cog_server_stops_comfyui_too(tmp_path, weights_server):
    def comfyui_pids() -> list[int]:
        marker = str(tmp_path / "input").encode()
        pids = []
        for proc in Path("/proc").iterdir():
            try:
                command = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if proc.name.isdigit() and b"main.py" in command and marker in command:
                pids.append(int(proc.name))
        return pids

    with CogServer(deployment(tmp_path, weights_server), log_path=tmp_path / "cog.log") as server:
        assert server.health()["status"] == "READY"
        assert len(comfyui_pids()) == 1
    wait_for(lambda: not comfyui_pids(), timeout=120)  # a backstop: it ends with the worker


def test_best_effort_attempts_every_part_of_the_preload_and_logs_each_failure(tmp_path, weights_server):
    (tmp_path / "preload").mkdir()
    (tmp_path / "preload" / "wf.json").write_text(json.dumps(upscale("by_workflow.safetensors")))
    env = deployment(
        tmp_path,
        weights_server,
        COG_WEIGHTS=weights_server.url("/user/no-such.tar"),  # 404
        BASE_MODEL_KIT="test-broken",  # its one weight is gone
        PRELOAD_WORKFLOW=str(tmp_path / "preload"),
        PRELOAD_WEIGHTS="tiny_compact_x2.safetensors",
        PRELOAD_BEST_EFFORT="true",
    )
    with CogServer(env, log_path=tmp_path / "cog.log") as server:
        assert server.health()["status"] == "READY"
        log = server.log()
    assert "preloading Cog's weights failed, going on (PRELOAD_BEST_EFFORT)" in log
    assert "preloading BASE_MODEL_KIT failed, going on (PRELOAD_BEST_EFFORT)" in log
    weights = tmp_path / "weights" / "upscale_models"
    assert (weights / "by_workflow.safetensors").read_bytes() == TINY
    assert (weights / "tiny_compact_x2.safetensors").read_bytes() == TINY


def test_a_failed_preload_stops_a_comfyui_still_starting_at_once(tmp_path, weights_server):
    env = deployment(
        tmp_path,
        weights_server,
        BASE_MODEL_KIT="nope",  # fails at once
        COMFYUI_STANDIN_START_DELAY="600",  # as a ComfyUI importing a heavy custom node
        COMFYUI_START_TIMEOUT="900",
    )
    with CogServer(env, log_path=tmp_path / "cog.log", setup_timeout=60) as server:
        assert server.health()["status"] == "SETUP_FAILED"
        assert "Unknown model kit 'nope'" in server.log()
        assert "ComfyUI did not start" not in server.log()
