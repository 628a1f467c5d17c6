"""`python -m weightkit` as a real process: help, list, kits, plan, and its exit codes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.cli_process import weightkit_runner
from weightkit.urlforms import stable_weight_name

ROOT = Path(__file__).resolve().parent.parent
RECORDINGS = ROOT / "tests" / "reference" / "comfyui"


@pytest.fixture
def run(tmp_path):
    env = {
        k: v for k, v in os.environ.items() if k not in ("EXTRA_MODEL_PATHS_CONFIG", "WEIGHTS_MANIFEST_EXTRA")
    }
    env.update(
        COMFYUI_PATH=str(tmp_path / "ComfyUI"), WEIGHTS_DIR=str(tmp_path / "weights"), PYTHONPATH=str(ROOT)
    )

    return weightkit_runner(env, tmp_path)


def write_workflow(tmp_path: Path, nodes: dict) -> str:
    path = tmp_path / "workflow.json"
    path.write_text(json.dumps(nodes))
    return str(path)


def test_help_lists_the_commands(run):
    result = run("--help")
    assert result.returncode == 0
    for command in ("list", "kits", "plan"):
        assert command in result.stdout


def test_list_by_folder_with_human_sizes(run):
    result = run("list", "--folder", "upscale_models", "--kit", "upscale")
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        "upscale_models/RealESRGAN_x4plus.pth  67.0 MB  bsd-3-clause",
        "upscale_models/RealESRGAN_x2plus.pth  67.1 MB  bsd-3-clause",
        "2 weights, 134 MB in all.",
    ]


def test_list_says_when_the_host_states_the_size(run):
    result = run("list", "--kit", "wan")
    assert result.returncode == 0
    assert "size unknown" in result.stdout and "6 weights, 6 of unknown size in all." in result.stdout


def test_list_by_kit_as_json(run):
    result = run("list", "--kit", "flux", "--json")
    assert result.returncode == 0
    keys = [f"{w['folder']}/{w['name']}" for w in json.loads(result.stdout)]
    assert keys == [
        "diffusion_models/flux1-schnell.safetensors",
        "vae/ae.safetensors",
        "text_encoders/clip_l.safetensors",
        "text_encoders/t5xxl_fp8_e4m3fn.safetensors",
    ]


def test_unknown_kit_exits_2_naming_the_known_ones(run):
    result = run("list", "--kit", "sd9")
    assert result.returncode == 2
    assert "Unknown model kit 'sd9'" in result.stderr and "sdxl" in result.stderr


def test_kits_show_count_size_and_description(run):
    result = run("kits")
    assert result.returncode == 0
    (sdxl,) = [line for line in result.stdout.splitlines() if line.startswith("sdxl ")]
    assert "3 files" in sdxl and "13.3 GB" in sdxl and "SDXL 1.0" in sdxl


def test_plan_shows_present_and_fetchable_and_never_a_clean_count_past_an_unknown_node(run, tmp_path):
    present = tmp_path / "weights" / "upscale_models" / "RealESRGAN_x2plus.pth"
    present.parent.mkdir(parents=True)
    with open(present, "wb") as handle:
        handle.truncate(67061725)  # the manifest's size; never read
    workflow = write_workflow(
        tmp_path,
        {
            "1": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "RealESRGAN_x2plus.pth"}},
            "2": {"class_type": "LoraLoader", "inputs": {"lora_name": "lcm_lora_sdxl.safetensors"}},
            "3": {"class_type": "CustomThing", "inputs": {"model": "mystery.gguf"}},
        },
    )
    result = run("plan", workflow)
    assert result.returncode == 1, result.stderr  # CustomThing may load anything: the plan cannot be sure
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "The workflow needs 3 weight files that can be known: 1 present, 1 to fetch, 0 missing that cannot "
        "be fetched, 1 in an unknown folder."
    )
    assert lines[1].startswith("present  upscale_models/RealESRGAN_x2plus.pth") and str(present) in lines[1]
    assert lines[2].startswith("fetch    loras/lcm_lora_sdxl.safetensors") and "394 MB" in lines[2]
    assert lines[3].startswith("unknown  mystery.gguf") and "node 3 CustomThing.model" in lines[3]
    assert lines[4].startswith("Custom nodes: 1 node class that ComfyUI lacks, from 0 known packs")
    assert "CustomThing (node 3) from no known pack" in result.stdout
    assert lines[-1] == "Would fetch at least 1 file, 394 MB."


def test_plan_exits_1_when_a_weight_cannot_be_fetched(run, tmp_path):
    result = run("plan", str(RECORDINGS / "workflow_e.json"))
    assert result.returncode == 1
    assert "missing  upscale_models/tiny_compact_x2.safetensors" in result.stdout
    assert (
        "'tiny_compact_x2.safetensors' (upscale_models), asked for by node 2 (UpscaleModelLoader)"
        in result.stderr
    )


def test_plan_json_from_standard_input(run):
    workflow = {"1": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}}}
    result = run("plan", "-", "--json", stdin=json.dumps({"prompt": workflow}).encode())
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["ok"] and plan["fetch_count"] == 1 and plan["fetch_bytes"] == 335304388
    (weight,) = plan["weights"]
    assert (weight["status"], weight["manifest_key"], weight["node_id"]) == (
        "fetch",
        "vae/ae.safetensors",
        "1",
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param('{"nodes": [], "links": []}', "Export (API)", id="ui-format"),
        pytest.param('{"1": ', "line 1 column 7", id="broken-json"),
        pytest.param(
            '{"1": {"class_type": "LoraLoader", "inputs": {"lora_name": "../x.pt"}}}',
            "path traversal",
            id="traversal",
        ),
    ],
)
def test_plan_exits_2_for_a_bad_workflow(run, tmp_path, content, expected):
    path = tmp_path / "bad.json"
    path.write_text(content)
    result = run("plan", str(path))
    assert result.returncode == 2 and expected in result.stderr and result.stdout == ""


def test_plan_of_a_file_that_does_not_exist_exits_2(run, tmp_path):
    result = run("plan", str(tmp_path / "nope.json"))
    assert result.returncode == 2 and "nope.json" in result.stderr


def test_plan_counts_an_alias_present_when_the_manifest_file_is_here(run, tmp_path):
    vae = tmp_path / "weights" / "vae"
    vae.mkdir(parents=True)
    with open(vae / "ae.safetensors", "wb") as sparse:
        sparse.truncate(335304388)  # the manifest size; plan only stats
    workflow = write_workflow(tmp_path, {"1": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.sft"}}})
    result = run("plan", workflow)
    assert result.returncode == 0, result.stderr
    assert "1 present, 0 to fetch" in result.stdout


PASTED = "https://huggingface.co/user/repo/blob/main/my_style.safetensors?download=true"


def test_plan_says_a_pasted_lora_url_would_be_fetched_and_under_which_name(run, tmp_path):
    workflow = write_workflow(tmp_path, {"1": {"class_type": "LoraLoader", "inputs": {"lora_name": PASTED}}})
    done = run("plan", workflow)
    assert done.returncode == 0, done.stderr
    name = stable_weight_name(PASTED)
    assert f"loras/{name}" in done.stdout and "fetch" in done.stdout
    assert "https://huggingface.co/user/repo/resolve/main/my_style.safetensors" in done.stdout
    assert "Would fetch 1 file" in done.stdout


def test_plan_json_of_a_url_weight_already_on_disk_is_present(run, tmp_path):
    name = stable_weight_name(PASTED)
    (tmp_path / "weights" / "loras").mkdir(parents=True)
    (tmp_path / "weights" / "loras" / name).write_bytes(b"x")
    workflow = write_workflow(tmp_path, {"1": {"class_type": "LoraLoader", "inputs": {"lora_name": PASTED}}})
    answer = json.loads(run("plan", "--json", workflow).stdout)
    assert answer["fetch_count"] == 0 and answer["ok"]
    assert [(w["status"], w["name"]) for w in answer["weights"]] == [("present", name)]
