"""`ComfyUI` starting a real server process and running workflows on it, over real sockets.

The server is the stand-in in `tests/comfyui_standin/` (started by `ComfyUI.start()` exactly as a ComfyUI
checkout would be), or a real ComfyUI when `COMFYUI_PATH` (a checkout to start) or `COMFYUI_URL` (a
running server, which must have `tiny_compact_x2.safetensors` in its `upscale_models`, as the recorded one
did; tests that need their own server or its weights folder skip) is set in the environment.
One server serves the whole module; tests that kill or never start a server make their own.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from cog import CancelationException
from PIL import Image

from comfyrun.errors import (
    ComfyUIDiedError,
    ComfyUIStartError,
    PromptInterruptedError,
    PromptRejectedError,
    RunTimeoutError,
    WeightCorruptError,
    WeightMissingError,
)
from comfyrun.settings import RuntimeSettings
from comfyui import ComfyUI
from tests.faultserver import FaultServer
from tests.served_weights import ServedWeights
from tests.tcp_proxy import CuttableProxy
from weightkit.errors import MissingWeightsError
from weightkit.settings import WeightSettings

pytestmark = pytest.mark.comfyui

ROOT = Path(__file__).resolve().parent.parent
STANDIN = ROOT / "tests" / "comfyui_standin"
MODELS = ROOT / "tests" / "reference" / "comfyui" / "models"
TINY = "tiny_compact_x2.safetensors"
ATTACHED = os.environ.get("COMFYUI_URL", "").strip() and not os.environ.get("COMFYUI_PATH", "").strip()
needs_own_server = pytest.mark.skipif(
    bool(ATTACHED), reason="needs a ComfyUI started here (COMFYUI_URL is set)"
)


def upscale(prefix: str, *, model: str = TINY, size: int = 64) -> dict:
    """EmptyImage → UpscaleModelLoader → ImageUpscaleWithModel (a step per 512px tile) → SaveImage."""
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": size, "height": size, "batch_size": 1, "color": 3368601},
        },
        "2": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": model}},
        "3": {
            "class_type": "ImageUpscaleWithModel",
            "inputs": {"upscale_model": ["2", 0], "image": ["1", 0]},
        },
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": prefix}},
    }


SLOW = 1024  # 9 tiles of 0.1 s each on the stand-in (COMFYUI_STANDIN_STEP_DELAY); ~1 s on a real CPU
# Real ComfyUI checks for an interrupt between tiles; a run that must outlast a 0.3 s limit needs more.
SLOWER = SLOW * (4 if os.environ.get("COMFYUI_PATH", "").strip() or ATTACHED else 1)


@pytest.fixture(scope="module")
def sources() -> Iterator[FaultServer]:
    """Where the store fetches weights from: a real HTTP server on 127.0.0.1."""
    with FaultServer() as server:
        yield server


@pytest.fixture(scope="module")
def comfy(tmp_path_factory, sources) -> Iterator[ComfyUI]:
    """ComfyUI started once for the module, with its own directories and a weights folder of tiny models."""
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


class Seen(threading.Event):
    """Set when a watched log message appears; `message` is the first such message."""

    message = ""


@contextlib.contextmanager
def logged(fragment: str, logger: str = "comfyrun.follow") -> Iterator[Seen]:
    """An event set when `logger` logs a message containing `fragment`."""
    seen = Seen()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if fragment in record.getMessage() and not seen.is_set():
                seen.message = record.getMessage()
                seen.set()

    target, handler = logging.getLogger(logger), Watch()
    level = target.level
    target.setLevel(logging.INFO)
    target.addHandler(handler)
    try:
        yield seen
    finally:
        target.removeHandler(handler)
        target.setLevel(level)


def history(comfy: ComfyUI, prompt_id: str | None = None, *, settle: float = 10.0) -> dict:
    """`GET /history[/id]`; with an id, waits (up to `settle` s) until ComfyUI has recorded that prompt."""
    deadline = time.monotonic() + settle
    while True:
        route = f"/history/{prompt_id}" if prompt_id else "/history"
        answer = json.loads(urllib.request.urlopen(comfy.url + route, timeout=10).read())
        if prompt_id is None or prompt_id in answer or time.monotonic() > deadline:
            return answer.get(prompt_id, {}) if prompt_id else answer
        time.sleep(0.05)


def in_thread(call) -> tuple[threading.Thread, list]:
    """Run `call` in a thread; the list receives what it returned or raised."""
    result: list = []

    def target() -> None:
        try:
            result.append(call())
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    return thread, result


def test_normal_run_logs_nodes_and_progress_and_returns_the_saved_image(comfy, caplog):
    with caplog.at_level(logging.INFO, logger="comfyrun.follow"):
        outputs = comfy.run(upscale("normal"), check_weights=not ATTACHED)
    (output,) = outputs
    assert (output.node_id, output.kind, output.type) == ("4", "images", "output")
    with Image.open(output.path) as image:
        assert image.size == (128, 128)
    assert "running node 3 (ImageUpscaleWithModel)" in caplog.text
    assert "node 3 (ImageUpscaleWithModel): 100%" in caplog.text


def test_cached_rerun_runs_no_node_and_returns_the_same_outputs(comfy, caplog):
    first = comfy.run(upscale("cached"))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="comfyrun.follow"):
        again = comfy.run(upscale("cached"))
    assert [o.filename for o in again] == [o.filename for o in first]
    assert "cached, not run again: node 1 (EmptyImage), node 2" in caplog.text
    assert "running node" not in caplog.text


@needs_own_server
def test_preview_images_are_temp_files_returned_only_on_request(comfy):
    workflow = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }
    assert comfy.run(workflow) == []
    (preview,) = comfy.run(workflow, include_temp=True)
    assert preview.type == "temp" and preview.path.is_file()
    assert preview.path.parent == comfy.settings.temp_dir / "temp"


def test_rejected_workflow_lists_the_failing_node_input_and_value(comfy):
    workflow = upscale("rejected")
    workflow["5"] = {
        "class_type": "ImageScale",
        "inputs": {"image": ["1", 0], "upscale_method": "magic", "width": 8, "height": 8, "crop": "disabled"},
    }
    workflow["6"] = {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "rejected"}}
    workflow["1"]["inputs"]["width"] = 0
    with pytest.raises(PromptRejectedError) as info:
        comfy.run(workflow, check_weights=False)
    message = str(info.value)
    assert "Node 1 (EmptyImage): input 'width': Value 0 smaller than min of 1." in message
    assert "Node 5 (ImageScale): input 'upscale_method': 'magic' is not one of 'nearest-exact'" in message


def test_missing_weight_in_a_loader_comfyui_does_not_validate_fails_as_missing(comfy):
    with pytest.raises(WeightMissingError) as info:
        comfy.run(upscale("missing", model="nope.safetensors"), check_weights=False)
    assert (info.value.folder, info.value.name, info.value.node_id) == (
        "upscale_models",
        "nope.safetensors",
        "2",
    )


@needs_own_server
def test_missing_weight_is_caught_by_the_store_before_anything_is_queued(comfy):
    before = len(history(comfy))
    with pytest.raises(MissingWeightsError, match=r"nope\.safetensors"):
        comfy.run(upscale("missing-checked", model="nope.safetensors"))
    assert len(history(comfy)) == before


@needs_own_server
def test_corrupt_weight_is_quarantined_fetched_again_and_the_prompt_rerun(comfy):
    weights_dir = comfy.store.settings.weights_dir
    target = weights_dir / "upscale_models" / "fixme.safetensors"
    shutil.copyfile(MODELS / "broken_truncated.safetensors", target)
    (output,) = comfy.run(upscale("repaired", model="fixme.safetensors"), check_weights=False)
    assert output.path.is_file()
    assert target.read_bytes() == (MODELS / TINY).read_bytes()
    (quarantined,) = (weights_dir / ".weightkit" / "quarantine" / "upscale_models").glob(
        "fixme.safetensors.*"
    )
    assert quarantined.read_bytes() == (MODELS / "broken_truncated.safetensors").read_bytes()


@needs_own_server
def test_corrupt_weight_that_stays_corrupt_names_the_file_and_what_was_tried(comfy):
    # The published .pth is itself truncated: it verifies (its sha256 is the manifest's), ComfyUI still
    # cannot open it, and the error says so after one repair.
    weights_dir = comfy.store.settings.weights_dir
    shutil.copyfile(MODELS / "broken_truncated.pth", weights_dir / "upscale_models" / "stuck.pth")
    with pytest.raises(WeightCorruptError) as info:
        comfy.run(upscale("stuck", model="stuck.pth"))
    assert info.value.files == (("upscale_models", "stuck.pth"),)
    assert "PytorchStreamReader" in str(info.value) and "fetched again and verified" in str(info.value)


@needs_own_server
def test_corrupt_weight_whose_source_is_broken_too_is_not_installed(comfy):
    weights_dir = comfy.store.settings.weights_dir
    target = weights_dir / "upscale_models" / "stuck.safetensors"
    shutil.copyfile(MODELS / "broken_header.safetensors", target)
    with pytest.raises(WeightCorruptError) as info:
        comfy.run(upscale("stuck", model="stuck.safetensors"))
    assert "header too large" in str(info.value) and "Fetching it again failed" in str(info.value)
    assert not target.exists()  # quarantined, and the broken download was not put in its place


def test_interrupt_stops_the_running_prompt(comfy):
    with logged("running node 3") as running:
        thread, result = in_thread(lambda: comfy.run(upscale("interrupted", size=SLOW)))
        assert running.wait(30)
        comfy.interrupt()
        thread.join(30)
    (error,) = result
    assert isinstance(error, PromptInterruptedError)
    assert (error.node_id, error.class_type) == ("3", "ImageUpscaleWithModel")


def test_timeout_interrupts_the_prompt_on_comfyui_and_fails_clearly(comfy):
    impatient = ComfyUI(replace(comfy.settings, url=comfy.url, run_timeout=0.3))
    impatient.start()
    try:
        with pytest.raises(RunTimeoutError) as info:
            impatient.run(upscale("timeout", size=SLOWER))
    finally:
        impatient.stop()
    assert "0.3 s" in str(info.value)
    entry = history(comfy, info.value.prompt_id)
    assert entry["status"]["messages"][-1][0] == "execution_interrupted"


def test_cancelling_the_predicting_thread_interrupts_the_prompt_on_comfyui(comfy):
    with logged("running node 3") as running, logged("queued prompt", logger="comfyui") as queued:
        thread, result = in_thread(lambda: comfy.run(upscale("cancelled", size=SLOW)))
        assert queued.wait(30) and running.wait(30)
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(thread.ident), ctypes.py_object(CancelationException)
        )
        thread.join(5)
    assert not thread.is_alive()
    assert [type(r) for r in result] == [CancelationException]
    prompt_id = queued.message.split()[-1]
    assert history(comfy, prompt_id)["status"]["messages"][-1][0] == "execution_interrupted"


def test_websocket_drop_mid_run_reconnects_and_returns_the_result_once(comfy, tmp_path):
    proxy = CuttableProxy(int(comfy.url.rsplit(":", 1)[1])).start()
    through = ComfyUI(replace(comfy.settings, url=proxy.url, output_dir=tmp_path))
    through.start()
    try:
        with logged("running node 3") as running, logged("reconnecting", logger="comfyrun.follow") as dropped:
            thread, result = in_thread(lambda: through.run(upscale("dropped", size=SLOW)))
            assert running.wait(30)
            proxy.cut()
            thread.join(60)
            assert dropped.is_set()
    finally:
        through.stop()
        proxy.stop()
    (outputs,) = result
    assert [(o.node_id, o.filename) for o in outputs] == [("4", "dropped_00001_.png")]


def test_attached_comfyui_gets_local_inputs_uploaded_and_outputs_fetched(comfy, tmp_path):
    local_inputs = tmp_path / "inputs"
    (local_inputs / "pics").mkdir(parents=True)
    Image.new("RGB", (6, 4), (10, 200, 30)).save(local_inputs / "pics" / "attached.png")
    attached = ComfyUI(
        replace(comfy.settings, url=comfy.url, input_dir=local_inputs, output_dir=tmp_path / "out")
    )
    attached.start()
    try:
        assert attached.upload_inputs(local_inputs) == ["pics/attached.png"]
        workflow = {
            "1": {"class_type": "LoadImage", "inputs": {"image": "pics/attached.png"}},
            "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
            "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "attached"}},
        }
        (output,) = attached.run(workflow, check_weights=False)
    finally:
        attached.stop()
    assert output.path.parent == tmp_path / "out" / "output"  # fetched through /view
    with Image.open(output.path) as image:
        assert image.size == (6, 4) and image.convert("RGB").getpixel((0, 0)) == pytest.approx(
            (245, 55, 225), abs=1
        )


def test_a_comfyui_started_here_reads_the_input_folder_itself(comfy):
    assert comfy.upload_inputs(comfy.settings.input_dir) == []


def _fake_checkout(root: Path, main: str) -> Path:
    root.mkdir()
    (root / "main.py").write_text(textwrap.dedent(main))
    return root


def _settings(tmp_path: Path, checkout: Path, **overrides) -> RuntimeSettings:
    return RuntimeSettings(
        weights=WeightSettings(comfyui_path=checkout, weights_dir=tmp_path / "weights"),
        python=sys.executable,
        input_dir=tmp_path / "input",
        output_dir=tmp_path / "output",
        temp_dir=tmp_path / "temp",
        model_paths_file=tmp_path / "extra_model_paths.yaml",
        **overrides,
    )


@needs_own_server
def test_comfyui_killed_mid_run_fails_saying_so_with_its_last_log_lines(comfy, tmp_path):
    doomed = ComfyUI(
        replace(
            comfy.settings, input_dir=tmp_path / "in", output_dir=tmp_path / "out", temp_dir=tmp_path / "tmp"
        )
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COMFYUI_STANDIN_STEP_DELAY", "0.1")
        doomed.start()
    try:
        with logged("running node 3") as running:
            thread, result = in_thread(lambda: doomed.run(upscale("killed", size=SLOW)))
            assert running.wait(30)
            os.kill(doomed.pid, signal.SIGKILL)
            thread.join(30)
    finally:
        doomed.stop()
    (error,) = result
    assert isinstance(error, ComfyUIDiedError)
    assert error.exit_code == -signal.SIGKILL
    assert error.log_tail and "got prompt" in "\n".join(error.log_tail)
    assert "was killed by SIGKILL (exit code -9) while running prompt" in str(error)


def test_server_that_exits_at_start_fails_with_its_exit_code_and_last_log_lines(tmp_path, caplog):
    checkout = _fake_checkout(
        tmp_path / "ComfyUI",
        """
        import sys
        for n in range(60):
            print(f"loading custom node {n}")
        print("Traceback: ImportError: No module named 'torch'", file=sys.stderr)
        sys.exit(3)
        """,
    )
    comfy = ComfyUI(_settings(tmp_path, checkout, log_prefix="[test-comfy] "))
    with caplog.at_level(logging.INFO, logger="comfyrun.process"), pytest.raises(ComfyUIStartError) as info:
        comfy.start()
    error = info.value
    assert error.exit_code == 3
    assert error.log_tail[-1] == "Traceback: ImportError: No module named 'torch'"
    assert error.log_tail[0] == "loading custom node 21"  # the last 40 lines, not all of them
    assert "exited with code 3" in str(error) and "No module named 'torch'" in str(error)
    assert "[test-comfy] loading custom node 0" in caplog.text  # forwarded as it printed


def test_server_that_never_answers_fails_after_the_start_timeout_and_is_stopped(tmp_path):
    checkout = _fake_checkout(
        tmp_path / "ComfyUI",
        """
        import os, sys, time
        print("starting, but never listening", os.getpid(), flush=True)
        print(" ".join(sys.argv[1:]), flush=True)
        while True:
            time.sleep(1)
        """,
    )
    comfy = ComfyUI(_settings(tmp_path, checkout, start_timeout=1.0, port=None))
    with pytest.raises(ComfyUIStartError) as info:
        comfy.start()
    assert "did not answer within 1 s" in str(info.value)
    assert info.value.exit_code is None
    assert info.value.log_tail[0].startswith("starting, but never listening")
    arguments = info.value.log_tail[1].split()
    assert arguments[:2] == ["--listen", "127.0.0.1"]
    assert "--extra-model-paths-config" in arguments and "--disable-auto-launch" in arguments
    pid = int(info.value.log_tail[0].split()[-1])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped and reaped


def test_missing_checkout_fails_before_starting_anything(tmp_path):
    comfy = ComfyUI(_settings(tmp_path, tmp_path / "nowhere"))
    with pytest.raises(ComfyUIStartError, match=r"there is no main\.py in COMFYUI_PATH="):
        comfy.start()
