"""The deployments the predict tests share: one server per deployment for the whole package."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.cog_deployment import TINY, deployment, serving_weights, upscale
from tests.cog_server import CogServer
from tests.faultserver import FaultServer


@pytest.fixture(scope="package")
def weights_server() -> Iterator[FaultServer]:
    """`serving_weights()`, once for the package."""
    with serving_weights() as server:
        yield server


@pytest.fixture(scope="package")
def cog(tmp_path_factory, weights_server) -> Iterator[CogServer]:
    """A deployment preloading a kit and a workflow, with Cog's `weights` tar, fetching on demand."""
    base = tmp_path_factory.mktemp("deployment")
    corrupt = bytearray(TINY)
    corrupt[:8] = (2**40).to_bytes(8, "little")  # same size, header length absurd: ComfyUI cannot load it
    (base / "weights" / "upscale_models").mkdir(parents=True)
    (base / "weights" / "upscale_models" / "fixme.safetensors").write_bytes(bytes(corrupt))
    (base / "preload").mkdir()
    (base / "preload" / "wf.json").write_text(json.dumps(upscale("by_workflow.safetensors")))
    env = deployment(
        base,
        weights_server,
        BASE_MODEL_KIT="test-upscale",
        PRELOAD_WORKFLOW=str(base / "preload"),
        COG_WEIGHTS=weights_server.url("/user/trained.tar"),
        COMFYUI_STANDIN_STEP_DELAY="0.1",  # ImageUpscaleWithModel: 0.1 s per 512-pixel tile
    )
    with CogServer(env, log_path=base / "cog.log") as server:
        server.base = base
        yield server


@pytest.fixture(scope="package")
def strict_cog(tmp_path_factory, weights_server) -> Iterator[CogServer]:
    """A deployment with the kit preloaded that never fetches (WEIGHTS_STRICT): it fails fast."""
    base = tmp_path_factory.mktemp("strict")
    env = deployment(base, weights_server, BASE_MODEL_KIT="test-upscale", WEIGHTS_STRICT="true")
    with CogServer(env, log_path=base / "cog.log") as server:
        yield server
