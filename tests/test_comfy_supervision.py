"""ComfyUI's life under the real Cog runtime: killed, it is started again and the next prediction runs;
when it cannot be brought back the healthcheck says UNHEALTHY; and it never outlives the worker that
started it, SIGKILL included, nor coglet stopped during setup. Processes are killed for real."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cog_deployment import COMFYUI_PATH, REAL_COMFYUI, deployment, images, upscale, weights_server
from tests.cog_server import CogServer, comfyui_processes, process_exists, wait_for

pytestmark = pytest.mark.comfyui
__all__ = ["weights_server"]  # a module fixture, shared

log = logging.getLogger(__name__)


@pytest.fixture
def supervised(tmp_path, weights_server) -> Iterator[CogServer]:
    env = deployment(
        tmp_path, weights_server, BASE_MODEL_KIT="test-upscale", COMFYUI_STANDIN_STEP_DELAY="0.2"
    )
    with CogServer(env, log_path=tmp_path / "cog.log") as server:
        server.base = tmp_path
        yield server


def the_comfyui(cog: CogServer) -> int:
    (pid,) = wait_for(lambda: comfyui_processes(str(cog.base / "input")), timeout=60)
    return pid


def test_comfyui_killed_mid_prediction_fails_that_one_then_is_started_again_for_the_next(supervised):
    cog = supervised
    assert images(cog.predict({"workflow_json": json.dumps(upscale("tiny_compact_x2.safetensors"))}))
    first = the_comfyui(cog)
    slow = upscale("tiny_compact_x2.safetensors", "doomed", size=2048)  # 25 tiles of 0.2 s
    answer: list[dict] = []
    running = cog.log().count("running node 3")
    thread = threading.Thread(target=lambda: answer.append(cog.predict({"workflow_json": json.dumps(slow)})))
    thread.start()
    wait_for(lambda: cog.log().count("running node 3") > running, timeout=60)
    os.kill(first, signal.SIGKILL)
    killed = time.monotonic()
    thread.join(120)
    (failed,) = answer
    assert failed["status"] == "failed" and "ComfyUIDiedError" in failed["error"]

    again = cog.predict({"workflow_json": json.dumps(upscale("tiny_compact_x2.safetensors", "after"))})
    log.warning("from the kill to the next successful prediction: %.1f s", time.monotonic() - killed)
    assert len(images(again)) == 1
    assert the_comfyui(cog) != first
    assert "ComfyUI was killed by SIGKILL" in failed["error"] and "started again" in failed["error"]
    assert "got prompt" in failed["error"]  # its last log lines
    assert cog.idle_health()["status"] == "READY"
    assert "starting ComfyUI again in 1 s (restart 1 of at most 5 within 600 s)" in cog.log()


@pytest.mark.skipif(REAL_COMFYUI is not None, reason="needs a checkout it can break: the stand-in's")
def test_comfyui_that_cannot_be_started_again_makes_the_model_unhealthy_saying_why(tmp_path, weights_server):
    checkout = tmp_path / "ComfyUI"
    checkout.mkdir()
    (checkout / "main.py").symlink_to(COMFYUI_PATH / "main.py")
    env = deployment(tmp_path, weights_server, COMFYUI_PATH=str(checkout), COMFYUI_RESTART_LIMIT="1")
    with CogServer(env, log_path=tmp_path / "cog.log") as cog:
        cog.base = tmp_path
        assert cog.health()["status"] == "READY"
        (checkout / "main.py").unlink()  # the next start fails, and one restart is all it may have
        os.kill(the_comfyui(cog), signal.SIGKILL)
        health = wait_for(lambda: (h := cog.health())["status"] == "UNHEALTHY" and h, timeout=60)
        reason = health["user_healthcheck_error"]
        assert reason.startswith("Healthcheck failed: ComfyUIDownError: ComfyUI is down")
        assert "there is no main.py" in reason and "COMFYUI_RESTART_LIMIT" in reason
        refused = cog.predict({"workflow_json": json.dumps(upscale("tiny_compact_x2.safetensors"))})
        assert refused["status"] == "failed" and "ComfyUI is down" in refused["error"]


def test_sigkill_of_the_cog_worker_takes_comfyui_and_its_port_with_it(supervised):
    cog = supervised
    comfyui = the_comfyui(cog)
    worker = int(Path(f"/proc/{comfyui}/stat").read_text().rsplit(")", 1)[1].split()[1])  # its parent
    assert worker != cog.process.pid  # coglet's worker, not the server
    port = int(re.search(r"ComfyUI answers at http://127\.0\.0\.1:(\d+)", cog.log()).group(1))
    try:
        os.kill(worker, signal.SIGKILL)
        wait_for(lambda: not process_exists(comfyui), timeout=60)
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 5):
            pass
    finally:
        if process_exists(comfyui):  # so that a failure here leaves nothing running
            os.killpg(comfyui, signal.SIGKILL)


def test_sigterm_to_coglet_during_setup_takes_comfyui_with_it_at_once(tmp_path, weights_server):
    """A container stopped while the model is still starting: coglet gets SIGTERM while ComfyUI starts."""
    env = deployment(tmp_path, weights_server, COMFYUI_STANDIN_START_DELAY="120")
    cog = CogServer(env, log_path=tmp_path / "cog.log")
    cog.launch()
    try:
        (comfyui,) = wait_for(lambda: comfyui_processes(str(tmp_path / "input")), timeout=60)
        assert cog.health()["status"] == "STARTING"
        assert cog.process is not None
        cog.process.terminate()
        stopping = time.monotonic()
        wait_for(lambda: not process_exists(comfyui), timeout=30)
        log.info("ComfyUI gone %.2f s after coglet's SIGTERM during setup", time.monotonic() - stopping)
        cog.process.wait(30)
    finally:
        cog.stop()
        if process_exists(comfyui):
            os.killpg(comfyui, signal.SIGKILL)
