#!/usr/bin/env python3
"""Run one prediction without Docker, in the real Cog runtime (coglet), as `cog predict` would.

    python scripts/predict_local.py examples/upscale_realesrgan.json --input-file photo.png

Installs ComfyUI at the pinned commit into `COMFYUI_PATH` (default ./ComfyUI) with its requirements
(scripts/install_comfyui.sh; skip with --no-install), writes `.cog/openapi_schema.json` as `cog build`
does (so coglet validates the inputs as in the image), starts `python -m cog.server.http` serving
cog.yaml's `predict:` on 127.0.0.1, waits for setup, posts the prediction and writes the returned files
into --out (default ./outputs). Settings come from the environment as in a Cog image (see README).
Without a GPU, set COMFYUI_ARGS=--cpu.
"""

from __future__ import annotations

import argparse
import base64
import json
import mimetypes
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cogbuild import read_config, write_schema  # noqa: E402


def data_uri(path: Path) -> str:
    media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{media};base64,{base64.b64encode(path.read_bytes()).decode()}"


def get_json(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.load(response)
    except (urllib.error.URLError, ConnectionError, json.JSONDecodeError):
        return None


def run_prediction(url: str, inputs: dict[str, str], out: Path, *, timeout: float) -> int:
    """POST one prediction, write its files into `out` and print its metrics."""
    request = urllib.request.Request(
        url + "/predictions",
        data=json.dumps({"input": inputs}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        prediction = json.load(response)
    if prediction.get("status") != "succeeded":
        print(f"error: {prediction.get('error')}", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    for index, uri in enumerate(prediction["output"]):
        header, _, payload = uri.partition(",")
        extension = mimetypes.guess_extension(header[5:].split(";")[0]) or ".bin"
        path = out / f"output_{index}{extension}"
        path.write_bytes(base64.b64decode(payload))
        print(path)
    print(json.dumps(prediction.get("metrics", {}), indent=2))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workflow", type=Path, help="an API-format workflow JSON file")
    parser.add_argument("--input-file", type=Path, help="an image, video, zip or tar for the input folder")
    parser.add_argument("--output-format", default="webp", choices=["webp", "jpg", "png"])
    parser.add_argument("--out", type=Path, default=Path("outputs"), help="where returned files are written")
    parser.add_argument("--no-install", action="store_true", help="use the ComfyUI already installed")
    parser.add_argument("--setup-timeout", type=float, default=3600, help="seconds setup may take")
    args = parser.parse_args()

    if not args.no_install:
        subprocess.run(
            ["bash", str(ROOT / "scripts" / "install_comfyui.sh")],
            check=True,
            env=dict(os.environ, PYTHON=sys.executable),
        )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    predict = read_config(ROOT).predict
    write_schema(predict, ROOT)
    env = dict(os.environ, PORT=str(port), COG_PREDICT_TYPE_STUB=predict)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # coglet runs `python`
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "cog.server.http", "--host", "127.0.0.1"], cwd=ROOT, env=env
    )
    try:
        deadline = time.monotonic() + args.setup_timeout
        while (health := get_json(url + "/health-check")) is None or health.get("status") == "STARTING":
            if server.poll() is not None or time.monotonic() > deadline:
                print(
                    "error: the Cog server stopped or setup took too long; see its log above", file=sys.stderr
                )
                return 1
            time.sleep(0.5)
        if health.get("status") != "READY":
            print(f"error: setup failed ({health.get('status')}); see the log above", file=sys.stderr)
            return 1
        inputs = {"workflow_json": args.workflow.read_text(), "output_format": args.output_format}
        if args.input_file:
            inputs["input_file"] = data_uri(args.input_file)
        return run_prediction(url, inputs, args.out, timeout=args.setup_timeout)
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    raise SystemExit(main())
