"""Strict mode (WEIGHTS_STRICT): a prediction needing a weight not here fails at once."""

from __future__ import annotations

import json

import pytest

from tests.cog_deployment import upscale

pytestmark = pytest.mark.comfyui


def test_strict_mode_fails_at_once_listing_what_is_missing_and_how_to_preload(strict_cog, weights_server):
    before = len(weights_server.seen("/w/tiny.pth"))
    prediction = strict_cog.predict({"workflow_json": json.dumps(upscale("tiny_compact_x2.pth"))})
    assert prediction["status"] == "failed"
    error = prediction["error"]
    assert "tiny_compact_x2.pth" in error and "UpscaleModelLoader" in error and "PRELOAD_WORKFLOW" in error
    assert len(weights_server.seen("/w/tiny.pth")) == before


def test_empty_workflow_runs_the_bundled_default_example(strict_cog):
    prediction = strict_cog.predict({"workflow_json": ""})
    assert prediction["status"] == "failed"  # strict, and the SD 1.5 weights are not here
    assert "v1-5-pruned-emaonly.safetensors" in prediction["error"]
