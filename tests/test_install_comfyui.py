"""scripts/install_comfyui.sh: pinned, idempotent, atomic, and clear when it cannot fetch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
