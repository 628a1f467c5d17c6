"""cog.yaml is what `cog build` accepts, and it installs the ComfyUI this project was tested against."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = Path(__file__).resolve().parent / "reference"


def load_cog_yaml() -> dict:
    return yaml.safe_load((ROOT / "cog.yaml").read_text())


def test_cog_yaml_validates_against_cogs_schema():
    schema = json.loads((REFERENCE / "cog" / "config_schema_v1.0.json").read_text())
    jsonschema.validate(load_cog_yaml(), schema)


def test_cog_yaml_runs_the_predictor_on_a_gpu_with_ffmpeg():
    config = load_cog_yaml()
    assert config["predict"] == "predict.py:Predictor"
    assert config["build"]["gpu"] is True
    assert "ffmpeg" in config["build"]["system_packages"]
    assert config["build"]["python_requirements"] == "requirements.txt"


def test_runtime_settings_use_environment_not_exports_and_no_refused_names():
    config = load_cog_yaml()
    assert not any("export " in str(step) for step in config["build"].get("run", []))
    refused = re.compile(
        r"^(PATH|PYTHONPATH|R8_|REPLICATE_|CUDA_|NVIDIA_|PGET_|HF_ENDPOINT|HF_HUB_ENABLE_HF_TRANSFER|KUBERNETES_)"
    )
    names = [item.split("=", 1)[0] for item in config.get("environment", [])]
    assert names and not [n for n in names if refused.match(n)]


def test_comfyui_pinned_commit_is_the_recorded_one():
    recorded = re.search(r"at `([0-9a-f]{40})`", (REFERENCE / "comfyui" / "README.md").read_text()).group(1)
    script = (ROOT / "scripts" / "install_comfyui.sh").read_text()
    assert f"PINNED_COMMIT={recorded}" in script
    assert any("install_comfyui.sh" in str(step) for step in load_cog_yaml()["build"]["run"])


def test_requirements_file_has_no_options_cog_refuses():
    # Cog parses requirements.txt itself and refuses "-r" includes and bare local directories.
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        assert not line.startswith(("-r", "-e", ".", "/")), line


def test_the_torch_set_is_one_cogs_matrix_knows_for_build_cuda():
    from cogbuild import read_config

    config = read_config(ROOT)
    wheel = config.torch_wheel()
    assert config.gpu and config.cuda == "12.8" and wheel is not None and wheel.cuda == config.cuda
    pins = (config.pinned("torch"), config.pinned("torchvision"), config.pinned("torchaudio"))
    assert pins == (wheel.torch, wheel.torchvision, wheel.torchaudio)
    assert config.cog_base_image() == "r8.im/cog-base:cuda12.8-python3.11-torch2.9.1"


def test_the_image_gets_the_cog_sdk_the_tests_run_against():
    from importlib.metadata import version

    config = load_cog_yaml()
    dev = (ROOT / "requirements-dev.txt").read_text()
    assert config["build"]["sdk_version"] == version("cog") and f"cog=={version('cog')}" in dev


def test_the_test_environment_has_the_runtime_requirements_but_not_the_torch_set():
    from cogbuild.config import package_name, read_requirements

    runtime = {package_name(r) for r in read_requirements(ROOT / "requirements.txt")}
    dev = {package_name(r) for r in read_requirements(ROOT / "requirements-dev.txt")}
    torch_set = {"torch", "torchvision", "torchaudio"}
    assert torch_set <= runtime and runtime - torch_set <= dev and not dev & torch_set
