"""The client against every recorded ComfyUI case, replayed over real sockets, and against misbehaviours.

The replay server answers `POST /prompt` with what the real ComfyUI answered, plays the recorded websocket
messages and serves the recorded history; the client must reach the recorded outcome.
"""

from __future__ import annotations

import ctypes
import json
import logging
import threading
from dataclasses import replace

import pytest
from cog import CancelationException

from comfyrun.errors import (
    ComfyUIHTTPError,
    ExecutionError,
    PromptInterruptedError,
    PromptRejectedError,
    RunTimeoutError,
    WeightCorruptError,
    WeightMissingError,
)
from comfyrun.settings import RuntimeSettings
from comfyui import ComfyUI
from tests.comfyui_replay import REFERENCE, ReplayServer, load_case, recorded_cases
from tests.faultserver import FaultServer
from tests.served_weights import ServedWeights


@pytest.fixture(scope="module")
def replay():
    server = ReplayServer().start()
    yield server
    server.stop()


@pytest.fixture
def attach(replay, tmp_path):
    """A `ComfyUI` attached to the replay server; `attach(store=..., run_timeout=...)`."""
    replay.reset()
    started = []

    def make(*, store=None, run_timeout: float = 20.0) -> ComfyUI:
        settings = RuntimeSettings(url=replay.url, output_dir=tmp_path / "outputs", run_timeout=run_timeout)
        comfy = ComfyUI(settings, store=store)
        comfy.start()
        started.append(comfy)
        return comfy

    yield make
    for comfy in started:
        comfy.stop()


def _summary(name: str) -> dict:
    return json.loads((REFERENCE / f"summary_{name}.json").read_text())


def _expected(name: str) -> str:
    if (REFERENCE / f"error_{name}.json").exists():
        return "rejected"
    return _summary(name)["terminal"]


@pytest.mark.parametrize("name", recorded_cases())
def test_recorded_case_reaches_recorded_outcome(replay, attach, name):
    case = load_case(name)
    comfy = attach()
    replay.play(case)
    expected = _expected(name)
    if expected == "rejected":
        with pytest.raises((PromptRejectedError, ComfyUIHTTPError)) as info:
            comfy.run(case.workflow)
        assert getattr(info.value, "status", 400) == case.status
    elif expected == "execution_success":
        outputs = comfy.run(case.workflow, include_temp=True)
        recorded = [(o["node"], o["filename"], o["type"]) for o in _summary(name)["outputs"]]
        assert [(o.node_id, o.filename, o.type) for o in outputs] == recorded
        for output in outputs:
            assert output.path.read_bytes() == case.files[(output.filename, output.subfolder, output.type)]
    elif expected == "execution_error":
        error = case.history["status"]["messages"][-1][1]
        with pytest.raises(ExecutionError) as info:
            comfy.run(case.workflow)
        assert (info.value.node_id, info.value.class_type) == (error["node_id"], error["node_type"])
        assert info.value.exception_type == error["exception_type"]
    else:
        assert expected == "execution_interrupted"
        with pytest.raises(PromptInterruptedError) as info:
            comfy.run(case.workflow)
        assert info.value.node_id == "3"


@pytest.mark.parametrize(
    ("name", "phrases"),
    [
        (
            "d_bad_combo",
            ["Node 2 (ImageScale)", "input 'upscale_method': 'magic' is not one of 'nearest-exact'"],
        ),
        (
            "d_missing_ckpt",
            ["Node 1 (CheckpointLoaderSimple)", "'does_not_exist.safetensors'", "offers no files"],
        ),
        (
            "d_bad_values",
            [
                "Node 1 (EmptyImage)",
                "'width': Value 0 smaller than min of 1",
                "received 'abc'",
                "'color' is required",
            ],
        ),
        ("d_missing_link", ["Node 3 (SaveImage)", "Exception when validating node ('99')"]),
        ("d_unknown_class", ["NoSuchNode_Lab does not exist", "custom node"]),
        ("d_no_outputs", ["Prompt has no outputs", "SaveImage"]),
        ("hotadd_removed_oldstyle", ["Node 1 (LoadImage)", "Invalid image file: deleted_after_listing.png"]),
    ],
)
def test_rejected_workflow_reads_as_one_paragraph_naming_node_class_input_and_reason(
    replay, attach, name, phrases
):
    comfy = attach()
    replay.play(load_case(name))
    with pytest.raises(PromptRejectedError) as info:
        comfy.run({"1": {"class_type": "X", "inputs": {}}})
    message = str(info.value)
    assert "\n" not in message and "{" not in message
    for phrase in phrases:
        assert phrase in message


@pytest.mark.parametrize(
    ("name", "file"),
    [
        ("f_truncated", "broken_truncated.safetensors"),
        ("f_header", "broken_header.safetensors"),
        ("f_pth_truncated", "broken_truncated.pth"),
    ],
)
def test_corrupt_weight_without_store_names_the_file(replay, attach, name, file):
    comfy = attach()
    case = load_case(name)
    replay.play(case)
    with pytest.raises(WeightCorruptError) as info:
        comfy.run(case.workflow)
    assert info.value.files == ((None, file),)
    assert file in str(info.value) and "not fetched again" in str(info.value)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("f_unknown_arch", "UnsupportedModelError"),  # a wrong file, not a broken one
        ("i_oom", "DefaultCPUAllocator: can't allocate memory"),
    ],
)
def test_execution_error_that_is_not_a_broken_weight_stays_an_execution_error(replay, attach, name, expected):
    comfy = attach()
    case = load_case(name)
    replay.play(case)
    with pytest.raises(ExecutionError) as info:
        comfy.run(case.workflow)
    assert type(info.value) is ExecutionError
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("name", "weight"),
    [("d_missing_upscale_model", "nope.safetensors"), ("d_partial_invalid", "nope.pth")],
)
def test_missing_weight_in_unvalidated_loader_names_folder_and_file(replay, attach, name, weight):
    comfy = attach()
    case = load_case(name)
    replay.play(case)
    with pytest.raises(WeightMissingError) as info:
        comfy.run(case.workflow)
    assert (info.value.folder, info.value.name) == ("upscale_models", weight)


def test_partly_valid_workflow_runs_its_valid_outputs_and_warns_readably(replay, attach, caplog):
    comfy = attach()
    case = load_case("d_partial_invalid_legacy")
    replay.play(case)
    with caplog.at_level(logging.WARNING, logger="comfyui"):
        outputs = comfy.run(case.workflow)
    assert [o.filename for o in outputs] == ["d_partial_ok2_00001_.png"]
    assert "Node 3 (ImageScale): input 'upscale_method': 'magic'" in caplog.text


def test_temp_outputs_left_out_unless_asked_for(replay, attach):
    comfy = attach()
    case = load_case("g_preview_image")
    replay.play(case)
    assert comfy.run(case.workflow) == []
    replay.play(case)
    assert [o.type for o in comfy.run(case.workflow, include_temp=True)] == ["temp"]


def test_other_prompts_messages_are_ignored(replay, attach):
    mine, other = load_case("a"), load_case("i_other_client")
    # The other prompt's messages, its end included, arrive first, then interleaved with ours.
    theirs, ours = other.frames[3:], mine.frames[: len(other.frames) - 3]
    frames = other.frames[:3] + tuple(f for pair in zip(theirs, ours, strict=True) for f in pair)
    frames += mine.frames[len(ours) :]
    comfy = attach()
    replay.play(replace(mine, frames=frames))
    outputs = comfy.run(mine.workflow)
    assert [(o.node_id, o.filename) for o in outputs] == [("3", "case_a_00001_.png")]


@pytest.mark.parametrize(
    ("lose", "meaning"),
    [
        (0, "reconnects and hears the rest"),
        (3, "loses some messages while away, hears the end"),
        (99, "the prompt finished while away: reconciles from /history"),
    ],
)
def test_websocket_drop_mid_run_gives_the_result_once(replay, attach, lose, meaning):
    comfy = attach()
    case = load_case("e")
    script = replay.play(case, drop_before=8, lose=lose)
    outputs = comfy.run(case.workflow)
    assert script.finished.is_set()
    assert [(o.node_id, o.filename) for o in outputs] == [("4", "case_e_00001_.png")], meaning
    assert len(replay.posted("/prompt")) == 1


def test_run_longer_than_timeout_is_interrupted_and_fails_clearly(replay, attach):
    comfy = attach(run_timeout=0.5)
    case = load_case("g_upscale_progress")
    script = replay.play(case, hold_before=len(case.frames) - 3)
    with pytest.raises(RunTimeoutError) as info:
        comfy.run(case.workflow)
    assert script.held.is_set()
    assert "0.5 s" in str(info.value) and "COMFYUI_RUN_TIMEOUT" in str(info.value)
    prompt_id = replay.posted("/prompt")[0]["prompt_id"]
    assert replay.posted("/interrupt") == [{"prompt_id": prompt_id}]
    assert replay.posted("/queue") == [{"delete": [prompt_id]}]


def test_cancelling_the_predicting_thread_interrupts_the_prompt(replay, attach):
    """Cog cancels by raising `CancelationException` in the predicting thread (PyThreadState_SetAsyncExc)."""
    comfy = attach()
    case = load_case("e")
    script = replay.play(case, hold_before=len(case.frames) - 3)
    raised: list[BaseException] = []

    def predict() -> None:
        try:
            comfy.run(case.workflow)
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=predict)
    thread.start()
    assert script.held.wait(10)
    injected = ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread.ident), ctypes.py_object(CancelationException)
    )
    assert injected == 1
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert [type(e) for e in raised] == [CancelationException]
    assert replay.posted("/interrupt") == [{"prompt_id": replay.posted("/prompt")[0]["prompt_id"]}]
    assert script.finished.wait(5)  # the server saw the interrupt and ended the prompt


@pytest.fixture
def sources():
    with FaultServer() as server:
        yield server


def broken_upscaler(tmp_path, sources, *, serve: bool = True):
    """A store whose weights folder holds a broken upscaler, described by a manifest whose URL serves the
    good file (or nothing)."""
    models = REFERENCE / "models"
    weights = ServedWeights(sources, tmp_path / "weights")
    good = (models / "tiny_compact_x2.safetensors").read_bytes()
    weights.add("upscale_models", "broken_truncated.safetensors", good, serve=serve)
    broken = tmp_path / "weights" / "upscale_models" / "broken_truncated.safetensors"
    broken.parent.mkdir(parents=True)
    broken.write_bytes((models / "broken_truncated.safetensors").read_bytes())
    return weights.store()


@pytest.fixture
def weights(tmp_path, sources):
    return broken_upscaler(tmp_path, sources)


def test_corrupt_weight_is_repaired_models_freed_and_prompt_rerun(replay, attach, weights, sources):
    comfy = attach(store=weights)
    broken, good = load_case("f_truncated"), load_case("e")
    replay.play(broken)
    replay.play(load_case("a"))  # the barrier prompt that makes /free certain
    replay.play(good)
    outputs = comfy.run(broken.workflow, check_weights=False)
    assert [o.filename for o in outputs] == ["case_e_00001_.png"]
    assert len(sources.seen("/upscale_models/broken_truncated.safetensors")) >= 1  # fetched again
    repaired = weights.settings.weights_dir / "upscale_models" / "broken_truncated.safetensors"
    assert repaired.read_bytes() == (REFERENCE / "models" / "tiny_compact_x2.safetensors").read_bytes()
    assert replay.posted("/free") == [{"unload_models": True, "free_memory": True}]
    assert len(replay.posted("/prompt")) == 3


def test_corrupt_weight_that_stays_corrupt_says_which_file_and_what_was_tried(replay, attach, weights):
    comfy = attach(store=weights)
    broken = load_case("f_truncated")
    replay.play(broken)
    replay.play(load_case("a"))  # the barrier
    replay.play(broken)
    with pytest.raises(WeightCorruptError) as info:
        comfy.run(broken.workflow, check_weights=False)
    assert info.value.files == (("upscale_models", "broken_truncated.safetensors"),)
    assert "upscale_models/broken_truncated.safetensors" in str(info.value)
    assert "fetched again and verified" in str(info.value)
    assert len(replay.posted("/prompt")) == 3


def test_corrupt_weight_that_cannot_be_fetched_again_says_why(replay, attach, tmp_path, sources):
    comfy = attach(store=broken_upscaler(tmp_path, sources, serve=False))
    broken = load_case("f_truncated")
    replay.play(broken)
    with pytest.raises(WeightCorruptError) as info:
        comfy.run(broken.workflow, check_weights=False)
    assert "Fetching it again failed" in str(info.value) and "404" in str(info.value)
    assert len(replay.posted("/prompt")) == 1
