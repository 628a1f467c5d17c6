"""scripts/predict_local.py: one prediction in the real Cog runtime without Docker, files written out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

from tests.cog_deployment import TINY, deployment, upscale
from tests.faultserver import FaultServer

ROOT = Path(__file__).resolve().parent.parent


def test_local_prediction_writes_the_returned_files_and_coglet_validates_with_the_schema(tmp_path):
    (ROOT / ".cog" / "openapi_schema.json").unlink(
        missing_ok=True
    )  # predict_local.py writes it, as cog build
    workflow = tmp_path / "workflow.json"
    workflow.write_text(json.dumps(upscale("tiny_compact_x2.safetensors", size=10)))
    with FaultServer() as server:
        server.serve("/w/tiny.safetensors", TINY)
        env = {**os.environ, **deployment(tmp_path / "deployment", server)}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
        result = subprocess.run(
            [
                sys.executable,
                "scripts/predict_local.py",
                str(workflow),
                "--no-install",
                "--output-format",
                "png",
                "--out",
                str(tmp_path / "out"),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    (output,) = (tmp_path / "out").iterdir()
    with Image.open(output) as image:
        assert image.format == "PNG" and image.size == (20, 20)
    assert '"weights_fetched": 1.0' in result.stdout
    assert "Loaded OpenAPI schema from .cog/openapi_schema.json" in result.stdout + result.stderr
