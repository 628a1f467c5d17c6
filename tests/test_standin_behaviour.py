"""The stand-in's behaviour beyond the recorded cases: ComfyUI's command line, directories, caching of
overwritten weights, loaders it only checks, classes it does not run, long combo lists, reconnecting,
and the weight-file checks themselves (what safetensors and torch readers reject)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from standin_process import STANDIN_PATH, ComfyProcess, attached_url, running_standin, start_comfyui
from standin_wire import Socket, get, post

pytestmark = pytest.mark.comfyui

MODELS = Path(__file__).resolve().parent / "reference" / "comfyui" / "models"
GOOD = MODELS / "tiny_compact_x2.safetensors"
BROKEN = MODELS / "broken_header.safetensors"

sys.path.insert(0, str(STANDIN_PATH))
from standin.errors import SafetensorError  # noqa: E402
from standin.weightfiles import load_state_dict  # noqa: E402

standin_only = pytest.mark.skipif(not running_standin(), reason="about the stand-in itself")
own_server = pytest.mark.skipif(
    attached_url() is not None, reason="starts its own server; COMFYUI_URL names one"
)


def upscale(model_name: str, prefix: str = "x", width: int = 32) -> dict[str, Any]:
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": width, "height": 32, "batch_size": 1, "color": 0},
        },
        "2": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": model_name}},
        "3": {
            "class_type": "ImageUpscaleWithModel",
            "inputs": {"upscale_model": ["2", 0], "image": ["1", 0]},
        },
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": prefix}},
    }


def run(comfy: ComfyProcess, prompt: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Queue a prompt and follow it; returns the POST answer and the text messages up to the end."""
    client_id = uuid.uuid4().hex
    with Socket(comfy.ws_url(client_id)) as socket:
        socket.receive()
        answer = post(comfy.url, "/prompt", {"prompt": prompt, "client_id": client_id})
        assert answer.status == 200, answer.body
        frames = socket.until_done(answer.json()["prompt_id"])
    return answer.json(), [f.msg for f in frames if f.msg]


def terminal(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return next(
        m for m in messages if m["type"] in ("execution_success", "execution_error", "execution_interrupted")
    )


@pytest.fixture(scope="module")
def comfy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComfyProcess]:
    env = {"COMFYUI_STANDIN_STEP_DELAY": "0.3"}
    with start_comfyui(tmp_path_factory.mktemp("comfy"), env=env, args=["--disable-metadata"]) as process:
        yield process


# -- command line ----------------------------------------------------------------------------------------


def standin(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(STANDIN_PATH / "main.py"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, env=env)


@standin_only
def test_unknown_flag_fails_like_argparse_with_exit_code_2() -> None:
    result = standin("--listen", "127.0.0.1", "--no-such-flag")
    assert result.returncode == 2
    assert "main.py: error: unrecognized arguments: --no-such-flag" in result.stderr


@standin_only
def test_cache_lru_is_refused_rather_than_silently_ignored() -> None:
    result = standin("--cache-lru", "10")
    assert result.returncode == 2
    assert "--cache-lru is not supported" in result.stderr


@standin_only
def test_step_delay_that_is_not_a_number_stops_startup_with_its_name(tmp_path: Path) -> None:
    (tmp_path / "custom_nodes").mkdir()
    env = {"COMFYUI_STANDIN_STEP_DELAY": "slow", "PATH": ""}
    result = standin("--base-directory", str(tmp_path), "--quick-test-for-ci", env=env)
    assert result.returncode == 2
    assert "COMFYUI_STANDIN_STEP_DELAY" in result.stderr


@standin_only
def test_quick_test_for_ci_sets_up_then_exits_0_without_listening(tmp_path: Path) -> None:
    (tmp_path / "custom_nodes").mkdir()  # ComfyUI fails to start without it, with a base directory
    result = standin("--base-directory", str(tmp_path), "--quick-test-for-ci")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "input").is_dir()
    assert "To see the GUI" not in result.stderr


@standin_only
def test_an_input_folder_it_cannot_create_in_its_base_is_logged_and_startup_goes_on(tmp_path: Path) -> None:
    """As ComfyUI's folder_paths: a base where `input/` cannot be made (a read-only checkout in an image;
    here a dangling link, which stops root too) is logged, and the start goes on."""
    (tmp_path / "custom_nodes").mkdir()
    (tmp_path / "input").symlink_to(tmp_path / "nowhere")
    inputs = tmp_path / "inputs"
    result = standin(
        "--base-directory", str(tmp_path), "--input-directory", str(inputs), "--quick-test-for-ci"
    )
    assert result.returncode == 0, result.stderr
    assert "Failed to create input directory" in result.stderr


@own_server
def test_directory_flags_place_inputs_outputs_and_previews_and_nothing_lands_in_the_checkout(
    tmp_path: Path,
) -> None:
    before = sorted(p.name for p in STANDIN_PATH.iterdir())
    dirs = {name: tmp_path / name for name in ("in", "out", "tmp")}
    for d in dirs.values():
        d.mkdir()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(dirs["in"] / "pic.png")
    args = ["--input-directory", str(dirs["in"]), "--output-directory", str(dirs["out"])]
    args += ["--temp-directory", str(dirs["tmp"])]
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "pic.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "sub/out"}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }
    with start_comfyui(tmp_path / "base", args=args) as comfy:
        _, messages = run(comfy, prompt)
        outputs = {
            m["data"]["node"]: m["data"]["output"]["images"][0] for m in messages if m["type"] == "executed"
        }
        view = get(comfy.url, "/view?filename=out_00001_.png&subfolder=sub&type=output")
        previews = [p.name for p in (dirs["tmp"] / "temp").iterdir()]
    assert outputs["2"] == {"filename": "out_00001_.png", "subfolder": "sub", "type": "output"}
    assert (dirs["out"] / "sub" / "out_00001_.png").is_file()
    assert view.status == 200 and view.body[:4] == b"\x89PNG"
    preview = outputs["3"]
    assert preview["type"] == "temp" and preview["filename"].startswith("ComfyUI_temp_")
    assert previews == [preview["filename"]]
    assert not (dirs["tmp"] / "temp").exists()  # ComfyUI empties <temp-directory>/temp when it stops
    assert sorted(p.name for p in STANDIN_PATH.iterdir()) == before


# -- weights, caching, loaders ----------------------------------------------------------------------------


@own_server
def test_overwritten_weights_keep_the_cached_loader_until_free_with_free_memory(comfy: ComfyProcess) -> None:
    folder = comfy.dirs.model_folder("upscale_models")
    shutil.copy(GOOD, folder / "swap.safetensors")
    assert terminal(run(comfy, upscale("swap.safetensors"))[1])["type"] == "execution_success"

    shutil.copy(BROKEN, folder / "swap.safetensors")
    _, messages = run(comfy, upscale("swap.safetensors", "again"))
    assert terminal(messages)["type"] == "execution_success"
    assert next(m for m in messages if m["type"] == "execution_cached")["data"]["nodes"] == ["1", "2", "3"]

    assert post(comfy.url, "/free", {"unload_models": True}).status == 200  # ComfyUI keeps its outputs
    assert terminal(run(comfy, upscale("swap.safetensors", "third"))[1])["type"] == "execution_success"

    assert post(comfy.url, "/free", {"free_memory": True}).status == 200
    error = terminal(run(comfy, upscale("swap.safetensors", "fourth"))[1])["data"]
    assert error["exception_type"] == "safetensors._safetensors_rust.SafetensorError"
    assert error["exception_message"] == "Error while deserializing header: header too large\n"


@own_server
def test_corrupt_weights_replaced_are_loaded_on_the_next_run_without_free(comfy: ComfyProcess) -> None:
    folder = comfy.dirs.model_folder("upscale_models")
    shutil.copy(BROKEN, folder / "repair.safetensors")
    assert terminal(run(comfy, upscale("repair.safetensors"))[1])["type"] == "execution_error"
    shutil.copy(GOOD, folder / "repair.safetensors")
    assert terminal(run(comfy, upscale("repair.safetensors"))[1])["type"] == "execution_success"


@standin_only
def test_builtin_loader_opens_its_file_and_the_next_class_it_cannot_run_fails_clearly(
    comfy: ComfyProcess,
) -> None:
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "model.safetensors"}},
        "2": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 0], "vae": ["1", 2]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "x"}},
    }
    checkpoints = comfy.dirs.model_folder("checkpoints")
    shutil.copy(MODELS / "broken_truncated.safetensors", checkpoints / "model.safetensors")
    error = terminal(run(comfy, prompt)[1])["data"]
    assert (error["node_id"], error["exception_type"]) == (
        "1",
        "safetensors._safetensors_rust.SafetensorError",
    )

    shutil.copy(GOOD, checkpoints / "model.safetensors")
    error = terminal(run(comfy, prompt)[1])["data"]
    assert (error["node_id"], error["node_type"], error["exception_type"]) == (
        "2",
        "EmptyLatentImage",
        "NotImplementedError",
    )
    assert "stand-in does not run 'EmptyLatentImage'" in error["exception_message"]


@own_server
def test_combo_of_more_than_20_files_is_reported_by_its_length(comfy: ComfyProcess) -> None:
    folder = comfy.dirs.model_folder("loras")
    for i in range(21):
        (folder / f"lora_{i:02}.safetensors").write_bytes(GOOD.read_bytes())
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "model.safetensors"}},
        "2": {
            "class_type": "LoraLoader",
            "inputs": {
                "model": ["1", 0],
                "clip": ["1", 1],
                "lora_name": "nope.safetensors",
                "strength_model": 1.0,
                "strength_clip": 1.0,
            },
        },
        "3": {
            "class_type": "CheckpointSave",
            "inputs": {"model": ["2", 0], "clip": ["2", 1], "vae": ["1", 2], "filename_prefix": "x"},
        },
    }
    comfy.dirs.model_folder("checkpoints").joinpath("model.safetensors").write_bytes(GOOD.read_bytes())
    answer = post(comfy.url, "/prompt", {"prompt": prompt})
    errors = answer.json()["node_errors"]["2"]["errors"]
    assert answer.status == 400
    assert errors[0]["details"] == "lora_name: 'nope.safetensors' not in (list of length 21)"
    assert errors[0]["extra_info"]["input_config"] is None


@standin_only
def test_client_reconnecting_mid_run_is_told_the_running_node(comfy: ComfyProcess) -> None:
    shutil.copy(GOOD, comfy.dirs.model_folder("upscale_models") / "slow.safetensors")
    client_id = uuid.uuid4().hex
    with Socket(comfy.ws_url(client_id)) as first:
        first.receive()
        answer = post(
            comfy.url, "/prompt", {"prompt": upscale("slow.safetensors", width=2048), "client_id": client_id}
        )
        prompt_id = answer.json()["prompt_id"]
        while first.receive().type != "progress":
            pass
    with Socket(comfy.ws_url(client_id)) as second:
        assert second.receive().msg["data"]["sid"] == client_id
        assert second.receive().msg == {"type": "executing", "data": {"node": "3"}}
        assert post(comfy.url, "/interrupt", {"prompt_id": "not-running"}).status == 200
        assert post(comfy.url, "/interrupt", {"prompt_id": prompt_id}).status == 200
        messages = [f.msg for f in second.until_done(prompt_id) if f.msg]
    assert terminal(messages)["type"] == "execution_interrupted"
    assert terminal(messages)["data"]["node_id"] == "3"


# -- what the weight-file checks reject ---------------------------------------------------------------------


def safetensors(header: dict[str, Any] | bytes, data: bytes = b"", length: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


TENSOR = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}


@pytest.mark.parametrize(
    "content,message",
    [
        (b"\x01\x02", "header too small"),
        (safetensors(TENSOR, b"\0" * 8, length=10_000), "invalid header length"),
        (
            safetensors(b"\xff\xfe{}"),
            "invalid UTF-8 in header: invalid utf-8 sequence of 1 bytes from index 0",
        ),
        (safetensors(b"{not json"), "invalid JSON in header: expecting property name"),
        (
            safetensors({"w": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12),
            "invalid offset",
        ),
        (
            safetensors({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8),
            "invalid shape",
        ),
        (safetensors(TENSOR, b"\0" * 9), "incomplete metadata, file not fully covered"),
    ],
    ids=[
        "too-small",
        "header-past-end",
        "not-utf8",
        "not-json",
        "offset-gap",
        "size-mismatch",
        "extra-bytes",
    ],
)
def test_safetensors_check_rejects_what_safetensors_rejects(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "w.safetensors"
    path.write_bytes(content)
    with pytest.raises(SafetensorError) as caught:
        load_state_dict(str(path))
    assert str(caught.value).startswith("Error while deserializing header: ")
    assert message in str(caught.value)


def test_safetensors_check_accepts_a_valid_file_with_metadata(tmp_path: Path) -> None:
    path = tmp_path / "ok.safetensors"
    path.write_bytes(safetensors({"__metadata__": {"format": "pt"}, **TENSOR}, b"\0" * 8))
    assert {k: (v.shape, v.dtype) for k, v in load_state_dict(str(path)).items()} == {"w": ((2,), "F32")}


def test_torch_zip_without_a_tensor_record_fails_like_torch(tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    with zipfile.ZipFile(MODELS / "tiny_compact_x2.pth") as source, zipfile.ZipFile(path, "w") as target:
        for item in source.infolist():
            if not item.filename.endswith("/data/0"):
                target.writestr(item, source.read(item))
    with pytest.raises(RuntimeError, match="PytorchStreamReader failed locating file data/0: file not found"):
        load_state_dict(str(path))


def test_torch_file_that_is_neither_zip_nor_pickle_fails_to_unpickle(tmp_path: Path) -> None:
    import pickle

    path = tmp_path / "model.ckpt"
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(pickle.UnpicklingError):
        load_state_dict(str(path))


@standin_only
def test_stop_waits_for_the_clean_end_however_long_a_busy_machine_makes_it(tmp_path: Path) -> None:
    comfy = start_comfyui(tmp_path)
    (comfy.dirs.temp / "left.png").write_bytes(b"a preview")
    os.kill(comfy.process.pid, signal.SIGSTOP)  # as starved as a loaded machine can make it
    resume = threading.Timer(10.5, os.kill, (comfy.process.pid, signal.SIGCONT))  # past any fixed grace
    resume.start()
    try:
        assert comfy.stop() == 0  # Ctrl-C handled, not killed
    finally:
        resume.cancel()
        if comfy.process.poll() is None:  # the test failed: leave no server behind
            comfy.kill()
    assert not comfy.dirs.temp.exists()  # ComfyUI empties its temp folder on a clean stop


@standin_only
def test_ctrl_c_stops_the_server_whichever_of_its_threads_the_kernel_hands_it_to(tmp_path: Path) -> None:
    import ctypes

    comfy = start_comfyui(tmp_path)
    pid = comfy.process.pid
    threads = [int(tid) for tid in os.listdir(f"/proc/{pid}/task") if int(tid) != pid]
    assert threads, "the stand-in runs its prompt worker in a thread of its own"
    try:
        assert ctypes.CDLL(None, use_errno=True).tgkill(pid, threads[0], signal.SIGINT) == 0
        assert comfy.process.wait() == 0  # a Ctrl-C the idle loop never saw would hang here
    finally:
        if comfy.process.poll() is None:  # the test failed: leave no server behind
            comfy.kill()
    assert not comfy.dirs.temp.exists()
