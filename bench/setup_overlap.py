"""Setup overlap: preloading weights while ComfyUI starts takes about the longer of the two, not the sum.

    python -m bench setup [--start-delay 5.5] [--size 512M] [--rate 4m] [--runs 3]

One kit of one weight file of `--size` is served by nginx on 127.0.0.1 under `limit_rate --rate` per
response (a CDN's per-stream cap), and ComfyUI is the stand-in started with `COMFYUI_STANDIN_START_DELAY`
set to real ComfyUI's recorded start time (5.2–5.7 s from process start to the first answer; see
tests/reference/comfyui/README.md). Each run measures, in this order: ComfyUI's start alone, the preload
alone, then `App.setup()` doing both (a fresh weights folder each time). Prints the medians and
setup / max(start, preload) (1.0 is perfect overlap) and setup / (start + preload) (1.0 is none).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from prediction.app import App  # noqa: E402
from prediction.settings import PredictorSettings  # noqa: E402
from tests.nginxserver import Nginx  # noqa: E402
from weightkit.env import parse_size  # noqa: E402
from weightkit.store import WeightStore  # noqa: E402


def write_weight(path: Path, size: int) -> str:
    block = os.urandom(1 << 20)
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        for offset in range(0, size, len(block)):
            piece = block[: min(len(block), size - offset)]
            out.write(piece)
            digest.update(piece)
    return digest.hexdigest()


def settings_for(work: Path, manifest: Path) -> PredictorSettings:
    env = {
        "COMFYUI_PATH": str(ROOT / "tests" / "comfyui_standin"),
        "WEIGHTS_DIR": str(work / "weights"),
        "WEIGHTS_MANIFEST_EXTRA": str(manifest),
        "COMFYUI_INPUT_DIR": str(work / "input"),
        "COMFYUI_OUTPUT_DIR": str(work / "output"),
        "COMFYUI_TEMP_DIR": str(work / "temp"),
        "BASE_MODEL_KIT": "bench",
        "WEIGHTS_PROGRESS_INTERVAL": "3600",
    }
    return PredictorSettings.from_env(env)


def timed(function) -> float:
    started = time.monotonic()
    function()
    return time.monotonic() - started


def write_manifest(path: Path, size: int, sha256: str, url: str) -> Path:
    """A manifest with one kit of one weight, the file the benchmark serves."""
    weight = {"name": "bench.bin", "folder": "loras", "size": size, "sha256": sha256, "urls": [url]}
    weight |= {"license": "mit", "non_commercial": False, "gated": False}
    kits = {"bench": {"description": "benchmark", "weights": ["loras/bench.bin"]}}
    path.write_text(json.dumps({"schema_version": 1, "kits": kits, "weights": [weight]}))
    return path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench setup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--start-delay", type=float, default=5.5, help="seconds the stand-in takes to start")
    parser.add_argument("--size", default="512M", help="size of the kit's weight file")
    parser.add_argument("--rate", default="4m", help="nginx limit_rate per response")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ["COMFYUI_STANDIN_START_DELAY"] = str(args.start_delay)
    size = parse_size(args.size)
    if size is None:
        parser.error(f"--size {args.size!r} is not a size")

    work = Path(tempfile.mkdtemp(prefix="bench-setup-"))
    try:
        (work / "www").mkdir()
        sha256 = write_weight(work / "www" / "bench.safetensors", size)
        with Nginx(work / "www", work / "nginx", limit_rate=args.rate) as nginx:
            manifest = write_manifest(
                work / "manifest.json", size, sha256, nginx.url("/limited/bench.safetensors")
            )
            starts, preloads, setups = [], [], []
            for run in range(args.runs):
                base = work / f"run{run}"
                settings = settings_for(base, manifest)
                app = App(settings)
                starts.append(timed(app.comfy.start))
                app.comfy.stop()
                store = WeightStore(replace(settings.comfyui.weights, weights_dir=base / "alone"))
                preloads.append(timed(lambda store=store: store.preload(kits=["bench"])))
                app = App(settings)
                setups.append(timed(app.setup))
                app.comfy.stop()
                shutil.rmtree(base)
                print(
                    f"run {run + 1}: start {starts[-1]:.2f} s, preload {preloads[-1]:.2f} s, "
                    f"setup {setups[-1]:.2f} s",
                    flush=True,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    start, preload, setup = (statistics.median(values) for values in (starts, preloads, setups))
    print(
        f"\nmedians of {args.runs}: ComfyUI start {start:.2f} s, "
        f"preload of {args.size} at {args.rate}/stream {preload:.2f} s, setup {setup:.2f} s"
    )
    print(f"setup / max(start, preload) = {setup / max(start, preload):.2f}   (1.00 = full overlap)")
    print(f"setup / (start + preload)   = {setup / (start + preload):.2f}   (1.00 = no overlap)")
    return 0
