"""A Cog deployment for tests: its weights served on 127.0.0.1, its manifest and environment, workflows.

`deployment(base, server)` is the environment of a deployment in `base` (its own folders, a test
manifest whose weights `weights_server` serves, the stand-in ComfyUI, or a real one when `COMFYUI_PATH`
is set); `upscale` and `invert_input` are small workflows it runs; `images` decodes what it returned.
"""

from __future__ import annotations

import io
import json
import os
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image

from tests.cog_server import data_uri_bytes
from tests.downloadkit import safetensors_bytes, tar_bytes
from tests.faultserver import FaultServer
from tests.manifest_entries import entry

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "tests" / "reference" / "comfyui" / "models"
TINY = (MODELS / "tiny_compact_x2.safetensors").read_bytes()
TINY_PTH = (MODELS / "tiny_compact_x2.pth").read_bytes()
LORA = safetensors_bytes(20_000, seed=7)
USER_LORA = safetensors_bytes(10_000, seed=8)
REAL_COMFYUI = os.environ.get("COMFYUI_PATH", "").strip() or None
COMFYUI_PATH = Path(REAL_COMFYUI or ROOT / "tests" / "comfyui_standin")


def upscale(model: str, prefix: str = "up", *, size: int = 16, color: int = 0x336699) -> dict:
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": size, "height": size, "batch_size": 1, "color": color},
        },
        "2": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": model}},
        "3": {
            "class_type": "ImageUpscaleWithModel",
            "inputs": {"upscale_model": ["2", 0], "image": ["1", 0]},
        },
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": prefix}},
    }


def with_lora_url(url: str, prefix: str) -> dict:
    """The upscale workflow plus a LoRA loader given a URL; not connected to an output, so ComfyUI (real or
    stand-in) does not run it, but the predictor fetches its weight."""
    workflow = upscale("tiny_compact_x2.safetensors", prefix)
    workflow["9"] = {
        "class_type": "LoraLoaderModelOnly",
        "inputs": {"lora_name": url, "strength_model": 1.0, "model": ["2", 0]},
    }
    return workflow


def invert_input(image: str = "input.png") -> dict:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "inverted"}},
    }


def picture() -> bytes:
    image = Image.new("RGB", (12, 8))
    image.putdata([(x * 20, y * 30, (x * y) % 256) for y in range(8) for x in range(12)])
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def wait_for(condition, *, timeout: float):
    """The first truthy value of `condition()`, polled until `timeout` (the servers offer no event)."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return value


def images(prediction: dict) -> list[Image.Image]:
    assert prediction["status"] == "succeeded", prediction.get("error") or prediction
    return [Image.open(io.BytesIO(data_uri_bytes(uri))) for uri in prediction["output"]]


@contextmanager
def serving_weights() -> Iterator[FaultServer]:
    """The deployment's weights, a LoRA (also behind a redirect and a login page), an input picture, a
    workflow and Cog's `weights` tar, on a real HTTP server on 127.0.0.1."""
    with FaultServer() as server:
        server.serve("/w/tiny.safetensors", TINY)
        server.serve("/w/tiny.pth", TINY_PTH)
        server.serve("/w/fixme.safetensors", TINY)
        server.serve("/w/preloaded-by-workflow.safetensors", TINY)
        server.serve("/lora/my_style.safetensors", LORA)
        server.serve(
            "/lora/moved.safetensors",
            b"",
            redirect=f"http://127.0.0.2:{server.port}/lora/my_style.safetensors",
        )
        server.serve("/inputs/picture.png", picture())
        server.serve("/lora/login.pth", b"<!doctype html><html>please log in</html>")
        server.serve(
            "/wf/upscale.json", json.dumps(upscale("tiny_compact_x2.safetensors", "from-url")).encode()
        )
        server.serve("/user/trained.tar", tar_bytes({"loras/user_trained.safetensors": USER_LORA}))
        yield server


@pytest.fixture(scope="module")
def weights_server() -> Iterator[FaultServer]:
    """`serving_weights()`, once for the module."""
    with serving_weights() as server:
        yield server


def deployment(base: Path, server: FaultServer, **env: str) -> dict[str, str]:
    """The environment of a deployment in `base`: its own folders, the test manifest, the stand-in."""
    manifest = {
        "schema_version": 1,
        "kits": {
            "test-upscale": {
                "description": "tiny upscaler",
                "weights": ["upscale_models/tiny_compact_x2.safetensors"],
            },
            "test-broken": {
                "description": "a weight whose source is gone",
                "weights": ["upscale_models/gone.safetensors"],
            },
        },
        "weights": [
            entry("tiny_compact_x2.safetensors", "upscale_models", TINY, server.url("/w/tiny.safetensors")),
            entry("tiny_compact_x2.pth", "upscale_models", TINY_PTH, server.url("/w/tiny.pth")),
            entry("fixme.safetensors", "upscale_models", TINY, server.url("/w/fixme.safetensors")),
            entry(
                "by_workflow.safetensors",
                "upscale_models",
                TINY,
                server.url("/w/preloaded-by-workflow.safetensors"),
            ),
            entry("gone.safetensors", "upscale_models", TINY, server.url("/w/missing-on-server.safetensors")),
        ],
    }
    base.mkdir(parents=True, exist_ok=True)
    (base / "manifest.json").write_text(json.dumps(manifest))
    return {
        "COMFYUI_PATH": str(COMFYUI_PATH),
        "WEIGHTS_DIR": str(base / "weights"),
        "WEIGHTS_MANIFEST_EXTRA": str(base / "manifest.json"),
        "COMFYUI_INPUT_DIR": str(base / "input"),
        "COMFYUI_OUTPUT_DIR": str(base / "output"),
        "COMFYUI_TEMP_DIR": str(base / "temp"),
        "WEIGHTS_RETRIES": "0",
        "WEIGHTS_STALL_TIMEOUT": "5",
        "ALLOW_PRIVATE_URLS": "127.0.0.1/32",
        # how to run a real ComfyUI, when COMFYUI_PATH names one (e.g. COMFYUI_ARGS=--cpu)
        **{name: os.environ[name] for name in ("COMFYUI_PYTHON", "COMFYUI_ARGS") if name in os.environ},
        **env,
    }
