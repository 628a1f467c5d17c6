"""A caller who sends what an attacker would, through the real Cog runtime: nothing leaks, nothing crashes.

Each test posts a prediction to coglet serving `predict.py` (ComfyUI is the stand-in, or a real one when
`COMFYUI_PATH` is set) and looks at what comes back and at everything the server logged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.cog_deployment import TINY, deployment, images, invert_input, picture, upscale, with_lora_url
from tests.cog_server import CogServer
from tests.faultserver import FaultServer

pytestmark = pytest.mark.comfyui

SECRET = "s3cr3t-t0ken-value"


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        running.serve("/w/tiny.safetensors", TINY)
        running.serve(f"/inputs/picture.png?token={SECRET}", picture())
        yield running


@pytest.fixture(scope="module")
def cog(tmp_path_factory, server) -> Iterator[CogServer]:
    base = tmp_path_factory.mktemp("hostile")
    with CogServer(deployment(base, server), log_path=base / "cog.log") as running:
        yield running


def test_a_token_in_a_lora_url_never_reaches_the_error_or_the_logs(cog, server):
    url = server.url(f"/lora/missing.safetensors?token={SECRET}&download=true")
    prediction = cog.predict({"workflow_json": json.dumps(with_lora_url(url, "secret-lora"))})
    assert prediction["status"] == "failed", prediction
    assert "/lora/missing.safetensors" in prediction["error"]
    assert SECRET not in prediction["error"] and SECRET not in prediction.get("logs", "")
    assert SECRET not in cog.log()


def test_a_password_in_a_url_never_reaches_the_error_or_the_logs(cog, server):
    url = server.url("/lora/x.safetensors").replace("http://", f"http://someone:{SECRET}@")
    prediction = cog.predict({"workflow_json": json.dumps(with_lora_url(url, "userinfo"))})
    assert prediction["status"] == "failed" and "user name or password" in prediction["error"]
    assert SECRET not in prediction["error"] and SECRET not in cog.log()


def test_a_token_in_an_image_url_is_used_but_never_printed(cog, server):
    workflow = invert_input(server.url(f"/inputs/picture.png?token={SECRET}"))
    prediction = cog.predict({"workflow_json": json.dumps(workflow), "output_format": "png"})
    assert len(images(prediction)) == 1
    assert SECRET not in prediction.get("logs", "") and SECRET not in cog.log()


@pytest.mark.parametrize("depth", [900, 100_000])
def test_a_workflow_nested_absurdly_deep_gets_a_clear_error(cog, depth):
    text = json.dumps(upscale("tiny_compact_x2.safetensors"))[:-1]
    text += ', "9": {"class_type": "Note", "inputs": {"x": ' + "[" * depth + "]" * depth + "}}}"
    prediction = cog.predict({"workflow_json": text})
    assert prediction["status"] == "failed"
    assert "more than 100 levels deep" in prediction["error"]
    assert "RecursionError" not in prediction["error"] + cog.log()


def test_a_workflow_with_a_five_thousand_digit_integer_gets_a_clear_error(cog):
    workflow = upscale("tiny_compact_x2.safetensors")
    text = json.dumps(workflow).replace('"width": 16', '"width": ' + "7" * 5000)
    prediction = cog.predict({"workflow_json": text})
    assert prediction["status"] == "failed" and "number too long to read" in prediction["error"]
