"""The recorded cases that ran on a fresh server, each replayed on one of its own and held against its
recording (d_partial_invalid_legacy, h_interrupt, extra_paths_priority); the recorded session is in
test_standin_conformance.py. With `COMFYUI_PATH` set this runs against that real ComfyUI instead;
h_interrupt needs the stand-in's step delay and is skipped there.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from standin_process import ComfyProcess, running_standin, start_comfyui
from standin_recordings import (
    MODELS,
    REPLAYS,
    assert_matches_recording,
    live_frames,
    normalize,
    recorded_frames,
    ref,
    run_case,
    workflow,
)
from standin_wire import Socket, get, post

pytestmark = REPLAYS


@pytest.fixture(scope="module")
def slow_comfy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComfyProcess]:
    """A second server whose upscaler steps take 0.5 s, so a run can be interrupted mid-node."""
    with start_comfyui(tmp_path_factory.mktemp("slow"), env={"COMFYUI_STANDIN_STEP_DELAY": "0.5"}) as comfy:
        shutil.copy(
            MODELS / "tiny_compact_x2.safetensors",
            comfy.dirs.model_folder("upscale_models") / "slow_compact_x2.safetensors",
        )
        yield comfy


def test_partly_valid_prompt_runs_only_its_valid_outputs(slow_comfy: ComfyProcess) -> None:
    run = run_case(slow_comfy, "d_partial_invalid_legacy")
    assert_matches_recording("d_partial_invalid_legacy", run, exact_number=False)


def test_interrupt_stops_the_running_prompt_and_queue_edits_touch_only_pending_ones(
    slow_comfy: ComfyProcess,
) -> None:
    if not running_standin():
        pytest.skip(
            "needs the stand-in's COMFYUI_STANDIN_STEP_DELAY (the recorded run used a 2.4 MB upscaler)"
        )
    recorded = ref("h_queue_interrupt_effects.json")
    client_id = uuid.uuid4().hex
    url = slow_comfy.url
    with Socket(slow_comfy.ws_url(client_id)) as socket:
        frames = [socket.receive()]
        answer = post(url, "/prompt", {"prompt": workflow("h_interrupt"), "client_id": client_id})
        prompt_id = answer.json()["prompt_id"]
        while (frame := socket.receive()).type != "progress":
            frames.append(frame)
        frames.append(frame)
        queued = []
        for item in recorded["queue_before"]["queue_pending"]:
            queued.append(
                post(url, "/prompt", {"prompt": item[2], "client_id": client_id}).json()["prompt_id"]
            )
        queue_info = get(url, "/prompt").json()
        before = get(url, "/queue").json()
        post(url, "/queue", {"delete": [queued[1]]})
        after_delete = get(url, "/queue").json()
        post(url, "/queue", {"clear": True})
        after_clear = get(url, "/queue").json()
        interrupted = post(url, "/interrupt", {})
        frames += socket.until_done(prompt_id)

    assert queue_info == recorded["get_prompt_before"]
    assert interrupted.status == 200
    ids = {prompt_id: "<running>", queued[0]: "<queued0>", queued[1]: "<queued1>"}
    recorded_ids = {
        recorded["result"]["prompt_id"]: "<running>",
        **dict(zip(recorded["queued_ids"], ["<queued0>", "<queued1>"], strict=True)),
    }
    for live, name in (
        (before, "queue_before"),
        (after_delete, "queue_after_delete"),
        (after_clear, "queue_after_clear"),
    ):
        assert _queue_shape(live, ids) == _queue_shape(recorded[name], recorded_ids), name
    assert get(url, "/queue").json() == recorded["queue_end"]

    _, recorded_frames_h = recorded_frames("h_interrupt")
    names = {prompt_id: "<prompt_id>", client_id: "<client>", recorded["result"]["prompt_id"]: "<prompt_id>"}
    assert normalize(live_frames(frames), names) == normalize(recorded_frames_h, names)
    (recorded_entry,) = ref("history_h_interrupt.json").values()
    live_entry = get(url, f"/history/{prompt_id}").json()[prompt_id]
    assert normalize(live_entry["status"], names) == normalize(recorded_entry["status"], names)
    assert (live_entry["outputs"], live_entry["meta"]) == ({}, {})
    assert get(url, f"/history/{queued[0]}").json() == {}


def _queue_shape(queue: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    """Queue items with ids named and numbers made relative to the running prompt's."""
    items = queue["queue_running"] + queue["queue_pending"]
    first = items[0][0] if items else 0
    return {
        key: [
            [item[0] - first, ids[item[1]], item[2], {"client_id": "<client>"}, item[4]]
            for item in queue[key]
        ]
        for key in ("queue_running", "queue_pending")
    }


def test_extra_model_paths_is_default_first_then_models_then_the_others(tmp_path: Path) -> None:
    extra = tmp_path / "extra_models"
    for folder in ("ups_default", "ups"):
        (extra / folder).mkdir(parents=True)
    shutil.copy(MODELS / "tiny_compact_x2.safetensors", extra / "ups_default" / "tiny_compact_x2.safetensors")
    shutil.copy(MODELS / "broken_header.safetensors", extra / "ups" / "tiny_compact_x2.safetensors")
    shutil.copy(MODELS / "tiny_compact_x2.safetensors", extra / "ups" / "extra_only.safetensors")
    config = tmp_path / "extra_model_paths.yaml"
    config.write_text(
        f"lab_default:\n  base_path: {extra}\n  is_default: true\n  upscale_models: ups_default\n"
        f"lab:\n  base_path: {extra}\n  upscale_models: ups\n  my_custom_folder: ups\n"
    )
    with start_comfyui(tmp_path / "base", args=["--extra-model-paths-config", str(config)]) as comfy:
        shutil.copy(
            MODELS / "broken_truncated.safetensors",
            comfy.dirs.model_folder("upscale_models") / "tiny_compact_x2.safetensors",
        )
        run = run_case(comfy, "extra_paths_priority")
        folder_paths = get(comfy.url, "/internal/folder_paths").json()
        custom = get(comfy.url, "/models/my_custom_folder").json()
        base = str(comfy.dirs.base)
    assert_matches_recording("extra_paths_priority", run, exact_number=True)
    recorded = ref("extra_model_paths_test.json")
    order = [
        p.replace(str(extra), "<extra_models>").replace(base, "<ComfyUI>")
        for p in folder_paths["upscale_models"]
    ]
    assert order == recorded["folder_paths_order"]
    assert custom == recorded["models_my_custom_folder"]
