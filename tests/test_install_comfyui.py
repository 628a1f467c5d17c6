"""scripts/install_comfyui.sh: pinned, idempotent, atomic, and clear when it cannot fetch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "install_comfyui.sh"


def run(dest: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), str(dest)],
        env={**os.environ, "PYTHON": sys.executable, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def make_upstream(tmp_path: Path) -> tuple[Path, str]:
    """A local git repository standing in for ComfyUI's, with one commit."""
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    (upstream / "main.py").write_text("print('comfy')\n")
    (upstream / "requirements.txt").write_text("# nothing to install\n")
    git = ["git", "-C", str(upstream), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "comfy"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout
    return upstream, commit.strip()


def test_unreachable_repository_fails_clearly_and_installs_nothing(tmp_path):
    dest = tmp_path / "ComfyUI"
    result = run(dest, COMFYUI_REPO=str(tmp_path / "no-such-repo"))
    assert result.returncode != 0
    assert "could not fetch ComfyUI commit a125cd84b054a57729b5eecab930ca9408719832" in result.stderr
    assert "COMFYUI_REPO" in result.stderr and "Nothing was installed" in result.stderr
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []  # no staging directory left behind


def test_install_then_rerun_does_nothing(tmp_path):
    upstream, commit = make_upstream(tmp_path)
    dest = tmp_path / "ComfyUI"
    first = run(dest, COMFYUI_REPO=str(upstream), COMFYUI_COMMIT=commit)
    assert first.returncode == 0, first.stderr
    assert (dest / "main.py").exists()
    assert (
        subprocess.run(
            ["git", "-C", str(dest), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        == commit
    )
    second = run(dest, COMFYUI_REPO=str(upstream), COMFYUI_COMMIT=commit)
    assert second.returncode == 0, second.stderr
    assert "already at" in second.stdout and "requirements already installed" in second.stdout


def test_refuses_to_overwrite_a_folder_that_is_not_comfyui(tmp_path):
    upstream, commit = make_upstream(tmp_path)
    dest = tmp_path / "ComfyUI"
    dest.mkdir()
    (dest / "precious.txt").write_text("mine")
    result = run(dest, COMFYUI_REPO=str(upstream), COMFYUI_COMMIT=commit)
    assert result.returncode != 0 and "not a git checkout" in result.stderr
    assert (dest / "precious.txt").read_text() == "mine"


# -- requirements: the kept torch set, clear failures ------------------------------------------------------


def make_wheel(folder: Path, name: str, version: str, *requires: str) -> None:
    """A minimal wheel with no code: enough for pip to resolve and install `name==version`."""
    dist = f"{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    files = {
        f"{dist}/METADATA": metadata,
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{dist}/RECORD"] = "".join(f"{path},,\n" for path in files) + f"{dist}/RECORD,,\n"
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as wheel:
        for path, text in files.items():
            wheel.writestr(path, text)


@pytest.fixture(scope="module")
def package_index(tmp_path_factory) -> Path:
    """A folder of wheels shaped like PyPI's torch family: each torchaudio/torchvision pins its torch."""
    folder = tmp_path_factory.mktemp("wheels")
    for torch, vision, audio in (("2.9.1", "0.24.1", "2.9.1"), ("2.11.0", "0.26.0", "2.11.1")):
        make_wheel(folder, "torch", torch)
        make_wheel(folder, "torchvision", vision, f"torch=={torch}")
        make_wheel(folder, "torchaudio", audio, f"torch=={torch}")
    return folder


def offline_pip(find_links: Path | None) -> dict[str, str]:
    """pip told to use only `find_links` (no machine configuration, no index)."""
    env = {"PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    return env | ({"PIP_FIND_LINKS": str(find_links)} if find_links else {})


def venv_with(tmp_path: Path, index: Path, *requirements: str) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True)
    python = tmp_path / "venv" / "bin" / "python"
    if requirements:
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *requirements],
            check=True,
            env={**os.environ, **offline_pip(index)},
        )
    return python


def installed(python: Path) -> dict[str, str]:
    listing = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=json"], check=True, capture_output=True, text=True
    )
    return {p["name"]: p["version"] for p in json.loads(listing.stdout)}


def comfyui_requiring(tmp_path: Path, requirements: str) -> tuple[Path, str]:
    upstream, _ = make_upstream(tmp_path)
    (upstream / "requirements.txt").write_text(requirements)
    git = ["git", "-C", str(upstream), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "commit", "-qam", "requirements"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout
    return upstream, commit.strip()


def test_comfyuis_unpinned_torch_requirements_keep_the_installed_torch_set(tmp_path, package_index):
    # ComfyUI lists torch, torchvision and torchaudio without versions; left alone, pip takes the newest
    # torchvision and torchaudio and replaces the installed torch (a CPU build, say) with the one they pin.
    python = venv_with(tmp_path, package_index, "torch==2.9.1")
    upstream, commit = comfyui_requiring(tmp_path, "torch\ntorchvision\ntorchaudio\n")
    result = run(
        tmp_path / "ComfyUI",
        COMFYUI_REPO=str(upstream),
        COMFYUI_COMMIT=commit,
        PYTHON=str(python),
        **offline_pip(package_index),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    versions = installed(python)
    kept = (versions["torch"], versions["torchvision"], versions["torchaudio"])
    assert kept == ("2.9.1", "0.24.1", "2.9.1"), result.stdout
    assert "keeping torch==2.9.1 (pip constraints)" in result.stdout


def test_without_torch_installed_it_says_how_to_keep_a_cpu_build(tmp_path, package_index):
    python = venv_with(tmp_path, package_index)
    upstream, commit = comfyui_requiring(tmp_path, "torch\n")
    result = run(
        tmp_path / "ComfyUI", COMFYUI_REPO=str(upstream), COMFYUI_COMMIT=commit, PYTHON=str(python),
        **offline_pip(package_index),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "torch is not installed" in result.stdout and "download.pytorch.org/whl/cpu" in result.stdout


@pytest.mark.parametrize(
    ("pip_env", "words"),
    [
        (
            {"PIP_NO_INDEX": "0", "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_RETRIES": "1"},
            "could not reach",
        ),
        ({}, "no version of a requirement fits"),
    ],
    ids=["index-unreachable", "no-such-version"],
)
def test_a_failed_requirements_install_says_why_and_keeps_the_code(tmp_path, package_index, pip_env, words):
    python = venv_with(tmp_path, package_index)
    upstream, commit = comfyui_requiring(tmp_path, "no-such-package-anywhere==1.0\n")
    dest = tmp_path / "ComfyUI"
    env = offline_pip(None) | pip_env
    result = run(dest, COMFYUI_REPO=str(upstream), COMFYUI_COMMIT=commit, PYTHON=str(python), **env)
    assert result.returncode != 0
    (message,) = [line for line in result.stderr.splitlines() if line.startswith("[install_comfyui] error")]
    assert words in message and "is in place" in message, message
    assert (dest / "main.py").exists() and not (dest / ".requirements-installed").exists()
