"""`python -m weightkit download` and `verify` as real processes against a real local weights server."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.cli_process import weightkit_runner
from tests.downloadkit import payload, safetensors_bytes, sha256
from tests.faultserver import FaultServer
from tests.hubservers import Hub, hub
from tests.manifest_entries import entry as manifest_entry

ROOT = Path(__file__).resolve().parent.parent
LORA = safetensors_bytes(50_000, seed=4)
UPSCALER = payload(30_000, seed=5)


@pytest.fixture
def server():
    with FaultServer() as running:
        running.serve("/lora.safetensors", LORA)
        running.serve("/x2.pth", UPSCALER)
        running.serve("/bad.pth", UPSCALER, corrupt=True)
        yield running


@pytest.fixture
def run(tmp_path, server):
    def entry(name, folder, data, path):
        return manifest_entry(name, folder, data, server.url(path))

    manifest = {
        "schema_version": 1,
        "kits": {
            "tiny": {"description": "test", "weights": ["loras/my_lora.safetensors", "upscale_models/x2.pth"]}
        },
        "weights": [
            entry("my_lora.safetensors", "loras", LORA, "/lora.safetensors"),
            entry("x2.pth", "upscale_models", UPSCALER, "/x2.pth"),
            entry("bad.pth", "upscale_models", UPSCALER, "/bad.pth"),
        ],
    }
    (tmp_path / "extra.json").write_text(json.dumps(manifest))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEIGHTS_", "EXTRA_MODEL_PATHS"))}
    env.update(
        COMFYUI_PATH=str(tmp_path / "ComfyUI"),
        WEIGHTS_DIR=str(tmp_path / "weights"),
        WEIGHTS_MANIFEST_EXTRA=str(tmp_path / "extra.json"),
        WEIGHTS_RETRIES="0",
        PYTHONPATH=str(ROOT),
    )

    return weightkit_runner(env, tmp_path)


def test_download_a_kit_then_again_is_a_no_op(run, tmp_path, server):
    first = run("download", "--kit", "tiny")
    assert first.returncode == 0, first.stderr
    assert "2 files" in first.stdout and "0 already present" in first.stdout
    assert (tmp_path / "weights" / "loras" / "my_lora.safetensors").read_bytes() == LORA
    served = server.bytes_served()
    second = run("download", "--kit", "tiny")
    assert second.returncode == 0 and "2 already present" in second.stdout
    assert server.bytes_served() == served


def test_download_by_name_and_by_workflow(run, tmp_path):
    assert run("download", "x2.pth").returncode == 0
    workflow = tmp_path / "wf.json"
    workflow.write_text(
        json.dumps(
            {
                "1": {
                    "class_type": "LoraLoaderModelOnly",
                    "inputs": {"lora_name": "my_lora.safetensors", "model": ["2", 0]},
                }
            }
        )
    )
    result = run("download", "--workflow", str(workflow))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "weights" / "loras" / "my_lora.safetensors").exists()


def test_download_of_wrong_bytes_fails_with_exit_1_and_leaves_no_file(run, tmp_path):
    result = run("download", "bad.pth")
    assert result.returncode == 1
    assert "sha256" in result.stderr and sha256(UPSCALER) in result.stderr
    assert not (tmp_path / "weights" / "upscale_models" / "bad.pth").exists()


def test_download_of_an_unknown_name_is_bad_input_with_a_suggestion(run):
    result = run("download", "x3.pth")
    assert result.returncode == 2 and "x2.pth" in result.stderr


def test_download_without_anything_to_download_is_bad_input(run):
    assert run("download").returncode == 2


def test_verify_rehashes_and_reports_a_file_changed_behind_its_record(run, tmp_path):
    assert run("download", "--kit", "tiny").returncode == 0
    good = run("verify")
    assert good.returncode == 0 and "2 of 2 verified" in good.stdout
    path = tmp_path / "weights" / "upscale_models" / "x2.pth"
    stat = path.stat()
    path.write_bytes(bytes(len(UPSCALER)))  # same size, other bytes, same mtime: only a re-hash sees it
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    bad = run("verify")
    assert bad.returncode == 1
    assert "wrong sha256" in bad.stdout and "upscale_models/x2.pth" in bad.stdout


def test_verify_rehashes_a_weight_whose_hash_hugging_face_states_and_reports_a_flipped_byte(run, tmp_path):
    hosted = manifest_entry("hosted.safetensors", "loras", LORA, Hub.url("org/repo", "hosted.safetensors"))
    manifest = {"schema_version": 1, "weights": [hosted | {"size": None, "sha256": None}]}
    (tmp_path / "hosted.json").write_text(json.dumps(manifest))
    with hub() as stand_in:
        stand_in.publish("org/repo", "hosted.safetensors", LORA)
        hosted_run = {
            "WEIGHTS_MANIFEST_EXTRA": str(tmp_path / "hosted.json"),
            "WEIGHTS_HF_ENDPOINT": stand_in.endpoint,
        }
        assert run("download", "hosted.safetensors", **hosted_run).returncode == 0
    good = run("verify", "hosted.safetensors", **hosted_run)
    assert good.returncode == 0 and "1 of 1 verified" in good.stdout, good.stdout + good.stderr
    path = tmp_path / "weights" / "loras" / "hosted.safetensors"
    stat = path.stat()
    path.write_bytes(bytes([LORA[0] ^ 1]) + LORA[1:])  # one byte flipped, same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same mtime: only a re-hash sees it
    bad = run("verify", "hosted.safetensors", **hosted_run)
    assert bad.returncode == 1 and "wrong sha256" in bad.stdout and "loras/hosted.safetensors" in bad.stdout


def test_download_into_a_relative_weights_dir_verifies_a_right_size_file_of_other_bytes(run, tmp_path):
    path = tmp_path / "weights" / "upscale_models" / "x2.pth"
    path.parent.mkdir(parents=True)
    path.write_bytes(bytes(len(UPSCALER)))  # the manifest's size, not its sha256
    result = run("download", "x2.pth", WEIGHTS_DIR="weights")  # relative to the working directory
    assert result.returncode == 0, result.stderr
    assert "0 already present" in result.stdout and path.read_bytes() == UPSCALER
