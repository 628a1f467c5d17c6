"""The pure parts of comfyrun, fed recorded ComfyUI data: the follower's state machine, output order,
which weight an execution error blames, and the settings table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from comfyrun.follow import PromptFollower, outcome_from_history
from comfyrun.nodeclasses import ImportFailures
from comfyrun.outputs import output_items
from comfyrun.settings import RuntimeSettings
from comfyrun.supervisor import RestartPolicy
from comfyrun.weightfaults import looks_corrupt, missing_weight, suspect_files
from tests.comfyui_replay import REFERENCE, load_case
from weightkit.extract import WeightRef


def _feed(follower: PromptFollower, frames) -> None:
    for kind, payload in frames:
        if kind == "binary":
            follower.on_binary(payload)
        else:
            follower.on_text(payload)


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("a", "success"),
        ("b", "success"),
        ("g_ws_binary_flags", "success"),
        ("g_ws_binary_legacy", "success"),
        ("f_truncated", "error"),
        ("h_interrupt", "interrupted"),
    ],
)
def test_follower_reaches_the_recorded_end_and_agrees_with_history(name, status):
    case = load_case(name)
    follower = PromptFollower(str(case.prompt_id), case.workflow)
    _feed(follower, case.frames)
    assert follower.finished
    assert outcome_from_history(case.history).status == status


def test_follower_ignores_another_prompts_messages_its_end_included():
    other = load_case("i_other_client")
    follower = PromptFollower("my-prompt")
    _feed(follower, other.frames)
    assert (follower.started, follower.finished, follower.current_node) == (False, False, None)


def test_follower_counts_previews_of_its_prompt_only():
    flags = load_case("g_ws_binary_flags")
    mine = PromptFollower(str(flags.prompt_id))
    _feed(mine, flags.frames)
    stranger = PromptFollower("my-prompt")
    stranger.started = True
    _feed(stranger, [f for f in flags.frames if f[0] == "binary"])
    assert (mine.previews, stranger.previews) == (2, 0)


def test_follower_records_cached_nodes_of_a_fully_cached_rerun():
    case = load_case("b")
    follower = PromptFollower(str(case.prompt_id))
    _feed(follower, case.frames)
    assert follower.cached_nodes == ("1", "2", "3")
    assert follower.current_node is None  # a cached rerun runs no node


def test_outputs_come_in_natural_node_order_with_text_and_without_temp_files():
    image = {"filename": "x.png", "subfolder": "", "type": "output"}
    entry = {
        "outputs": {
            "10": {"images": [dict(image, filename="10.png")]},
            "4:2": {"text": ["hello"], "animated": [False]},
            "2": {"gifs": [dict(image, filename="2.mp4")], "images": [dict(image, type="temp")]},
            "4": {"audio": [dict(image, filename="4.flac", subfolder="audio")]},
        }
    }
    items = output_items(entry)
    assert [(o.node_id, o.kind, o.filename or o.text) for o in items] == [
        ("2", "gifs", "2.mp4"),
        ("4", "audio", "4.flac"),
        ("4:2", "text", "hello"),
        ("10", "images", "10.png"),
    ]
    assert len(output_items(entry, include_temp=True)) == 5


@pytest.mark.parametrize(
    ("exception_type", "message", "corrupt"),
    [
        (
            "safetensors._safetensors_rust.SafetensorError",
            "Error while deserializing header: header too large",
            True,
        ),
        (
            "RuntimeError",
            "PytorchStreamReader failed reading zip archive: failed finding central directory",
            True,
        ),
        ("_pickle.UnpicklingError", "invalid load key, '<'.", True),
        ("spandrel.__helpers.registry.UnsupportedModelError", "", False),
        ("RuntimeError", "DefaultCPUAllocator: can't allocate memory", False),
        ("FileNotFoundError", "Model in folder 'upscale_models' with filename 'nope.pth' not found.", False),
    ],
)
def test_which_execution_errors_mean_a_broken_weight_file(exception_type, message, corrupt):
    assert looks_corrupt({"exception_type": exception_type, "exception_message": message}) is corrupt


def test_missing_model_error_names_folder_and_file():
    data = json.loads((REFERENCE / "history_d_missing_upscale_model.json").read_text())
    (entry,) = data.values()
    error = entry["status"]["messages"][-1][1]
    assert missing_weight(error) == ("upscale_models", "nope.safetensors")


def test_suspect_files_are_the_failing_nodes_weights_that_comfyui_reports():
    error = {"node_id": "5", "current_inputs": {"clip_name1": ["a.safetensors"], "type": ["flux"]}}
    refs = [
        WeightRef("a.safetensors", "text_encoders", "5", "DualCLIPLoader", "clip_name1"),
        WeightRef("b.safetensors", "text_encoders", "5", "DualCLIPLoader", "clip_name2"),
        WeightRef("a.safetensors", "text_encoders", "6", "CLIPLoader", "clip_name"),
    ]
    assert suspect_files(error, refs) == [("text_encoders", "a.safetensors")]
    assert suspect_files({"node_id": "5"}, refs) == [
        ("text_encoders", "a.safetensors"),
        ("text_encoders", "b.safetensors"),
    ]
    assert suspect_files(error, None) == [(None, "a.safetensors")]
    # The same file loaded by a second node: extraction named only the first.
    assert suspect_files(dict(error, node_id="9"), refs[1:]) == [("text_encoders", "a.safetensors")]


def test_settings_defaults_and_every_variable():
    assert RuntimeSettings.from_env({}) == RuntimeSettings()
    settings = RuntimeSettings.from_env(
        {
            "COMFYUI_PATH": "/opt/ComfyUI",
            "WEIGHTS_DIR": "/w",
            "COMFYUI_URL": "http://10.0.0.2:8188/",
            "COMFYUI_PORT": "9000",
            "COMFYUI_PYTHON": "/usr/bin/python3",
            "COMFYUI_ARGS": "--cpu --preview-method 'auto'",
            "COMFYUI_START_TIMEOUT": "12.5",
            "COMFYUI_RUN_TIMEOUT": "0",
            "COMFYUI_INPUT_DIR": "/i",
            "COMFYUI_OUTPUT_DIR": "/o",
            "COMFYUI_TEMP_DIR": "/t",
            "COMFYUI_LOG_PREFIX": "comfy| ",
        }
    )
    assert settings.comfyui_path == Path("/opt/ComfyUI") and settings.weights.weights_dir == Path("/w")
    assert settings.url == "http://10.0.0.2:8188" and settings.port == 9000
    assert settings.extra_args == ("--cpu", "--preview-method", "auto")
    assert (settings.start_timeout, settings.run_timeout) == (12.5, None)
    assert (settings.input_dir, settings.output_dir, settings.temp_dir) == (
        Path("/i"),
        Path("/o"),
        Path("/t"),
    )
    assert settings.model_paths_file == Path("/t/extra_model_paths.yaml")
    assert (settings.python, settings.log_prefix) == ("/usr/bin/python3", "comfy| ")


@pytest.mark.parametrize(
    ("variable", "value"),
    [("COMFYUI_PORT", "80000"), ("COMFYUI_URL", "localhost:8188"), ("COMFYUI_RUN_TIMEOUT", "soon")],
)
def test_settings_name_a_malformed_variable(variable, value):
    with pytest.raises(ValueError, match=variable):
        RuntimeSettings.from_env({variable: value})


def test_restart_delays_double_from_1_s_to_at_most_30_s_and_stop_at_the_limit():
    policy = RestartPolicy(limit=7, window=600.0)
    assert [policy.delay(recent) for recent in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert [policy.allows(recent) for recent in (0, 6, 7)] == [True, True, False]
    assert not RestartPolicy(limit=0).allows(0)  # COMFYUI_RESTART_LIMIT=0: never started again


def test_import_failures_are_read_from_comfyuis_log_and_its_own_optional_nodes_are_not_packs():
    failures = ImportFailures()
    for line in [  # as ComfyUI 0.3.64 printed them, with torchaudio missing and two broken packs
        "Cannot import /opt/ComfyUI/comfy_extras/nodes_audio.py module for custom nodes: No module named "
        "'torchaudio'",
        "IMPORT FAILED: nodes_audio.py",
        "Traceback (most recent call last):",
        "Cannot import /opt/ComfyUI/custom_nodes/ComfyUI-Broken module for custom nodes: "
        "No module named 'cv2'",
        "Skip /opt/ComfyUI/custom_nodes/empty.py module for custom nodes due to the lack of "
        "NODE_CLASS_MAPPINGS or NODES_LIST (need one).",
        "Import times for custom nodes:",
        "   0.0 seconds: /opt/ComfyUI/custom_nodes/websocket_image_save.py",
        "   0.0 seconds (IMPORT FAILED): /opt/ComfyUI/custom_nodes/empty.py",
        "   0.1 seconds (IMPORT FAILED): /opt/ComfyUI/custom_nodes/ComfyUI-Broken",
        "   0.2 seconds (IMPORT FAILED): /opt/ComfyUI/custom_nodes/ComfyUI-Silent",
    ]:
        failures.feed(line)
    assert failures.as_dict() == {
        "ComfyUI-Broken": "No module named 'cv2'",
        "empty.py": "the lack of NODE_CLASS_MAPPINGS or NODES_LIST (need one)",
        "ComfyUI-Silent": "it failed to import",
    }
