"""ComfyUI stops when asked even if the process that started it was itself started with SIGINT ignored, as a
background job of a non-interactive shell (a CI runner) is: the ignore would be inherited."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.standin_process import attached_url, comfyui_path, comfyui_python

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.skipif(attached_url() is not None, reason="needs a ComfyUI this test starts"),
]


def test_comfyui_started_by_a_parent_that_ignores_sigint_still_stops_cleanly_on_sigint(tmp_path):
    script = textwrap.dedent(
        f"""
        import signal, sys, time
        sys.path.insert(0, {str(ROOT)!r})
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a background job of `sh -c` has it
        from pathlib import Path
        from comfyrun.http import ComfyHTTP
        from comfyrun.process import ComfyProcess, free_port
        from comfyrun.settings import RuntimeSettings
        from weightkit.settings import WeightSettings
        base = Path({str(tmp_path)!r})
        settings = RuntimeSettings(
            weights=WeightSettings(comfyui_path=Path({str(comfyui_path())!r}), weights_dir=base / "w"),
            input_dir=base / "i", output_dir=base / "o", temp_dir=base / "t", extra_args=("--cpu",),
            python={comfyui_python()!r},
        )
        for folder in ("i", "o", "t"):
            (base / folder).mkdir()
        process = ComfyProcess(settings, port=free_port(), model_paths_files=[])
        process.start()
        process.wait_ready(ComfyHTTP(process.url), 120)
        process.stop(grace=60)
        print("exit", process.exit_code())
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "did not stop within" not in done.stderr  # it obeyed SIGINT instead of being killed
    assert done.stdout.strip().splitlines()[-1] != "exit -9"
