"""The ComfyUI the client tests share, and the HTTP server its weights come from: one each for the package."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from comfyrun.settings import RuntimeSettings
from comfyui import ComfyUI
from tests.comfyui_watch import MODELS, STANDIN, TINY
from tests.faultserver import FaultServer
from tests.served_weights import ServedWeights


@pytest.fixture(scope="package")
def sources() -> Iterator[FaultServer]:
    """Where the store fetches weights from: a real HTTP server on 127.0.0.1."""
    with FaultServer() as server:
        yield server


@pytest.fixture(scope="package")
def comfy(tmp_path_factory, sources) -> Iterator[ComfyUI]:
    """ComfyUI started once for the package, with its own directories and a weights folder of tiny models."""
    base = tmp_path_factory.mktemp("comfyui")
    weights = base / "weights"
    (weights / "upscale_models").mkdir(parents=True)
    shutil.copyfile(MODELS / TINY, weights / "upscale_models" / TINY)
    tiny, broken = (MODELS / TINY).read_bytes(), (MODELS / "broken_header.safetensors").read_bytes()
    served = ServedWeights(sources, weights)
    served.add("upscale_models", TINY, tiny)
    served.add("upscale_models", "fixme.safetensors", tiny)
    served.add("upscale_models", "stuck.safetensors", broken)  # the published file itself is broken
    served.add("upscale_models", "stuck.pth", (MODELS / "broken_truncated.pth").read_bytes())
    env = RuntimeSettings.from_env()
    settings = replace(
        env,
        weights=replace(
            env.weights,
            comfyui_path=Path(os.environ.get("COMFYUI_PATH", "").strip() or STANDIN),
            weights_dir=weights,
        ),
        input_dir=base / "input",
        output_dir=base / "output",
        temp_dir=base / "temp",
        model_paths_file=base / "extra_model_paths.yaml",
        run_timeout=60.0,
    )
    server = ComfyUI(settings, store=served.store(settings.weights))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COMFYUI_STANDIN_STEP_DELAY", "0.1")
        server.start()
    yield server
    server.stop()
