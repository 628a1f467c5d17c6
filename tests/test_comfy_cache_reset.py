"""`force_reset_cache=true` through the real Cog runtime: ComfyUI's worker applies `POST /free` only after
its next wait for work, so a prompt queued while it is still busy after the last one (collecting garbage,
here `COMFYUI_STANDIN_GC_DELAY`) ran first, from the cache it was meant to clear."""

from __future__ import annotations

import json

import pytest

from tests.cog_deployment import deployment, images, upscale, weights_server
from tests.cog_server import CogServer

pytestmark = pytest.mark.comfyui
__all__ = ["weights_server"]


def test_force_reset_cache_back_to_back_runs_every_node_again_each_time(tmp_path, weights_server):
    env = deployment(tmp_path, weights_server, BASE_MODEL_KIT="test-upscale", COMFYUI_STANDIN_GC_DELAY="1.0")
    workflow = json.dumps(upscale("tiny_compact_x2.safetensors", "fresh"))
    with CogServer(env, log_path=tmp_path / "cog.log") as cog:
        runs = [cog.predict({"workflow_json": workflow, "force_reset_cache": True}) for _ in range(3)]
    for run in runs:
        assert len(images(run)) == 1
        assert "(UpscaleModelLoader)" in run["logs"]  # it ran...
        cached = [line for line in run["logs"].splitlines() if "cached, not run again" in line]
        assert not [line for line in cached if "UpscaleModelLoader" in line], cached  # ...not from cache
