"""How long it takes to learn which weights a workflow needs and whether they are all here.

Builds a 500-node workflow with a realistic mix of loader and non-loader nodes, puts every weight it needs
on disk in a temporary directory (with a manifest describing them), then times parsing, extraction and the
stat-only check, next to references measured in the same run: a bare `os.stat` per file and a plain
`json.loads` of the same workflow. Targets: 20 µs per weight, 10 ms for the 500-node workflow.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from weightkit.check import check_weights
from weightkit.extract import required_weights
from weightkit.manifest import Manifest
from weightkit.manifest_file import parse_manifest
from weightkit.modelpaths import ModelPaths
from weightkit.verified import VerifiedRecords
from weightkit.workflow import parse_workflow

TARGET_PER_WEIGHT_US = 20.0
TARGET_WORKFLOW_MS = 10.0
BLOCK = 10  # nodes per block of the generated workflow
PROMPT = (
    "a lighthouse on a cliff at dusk, dramatic sky, volumetric light, highly detailed, oil painting in "
    "the style of the old masters, warm palette, 35mm, golden hour"
)


def build_workflow(nodes: int) -> dict[str, Any]:
    """Blocks of 10 nodes, each a small text-to-image-and-upscale graph with five weights of its own."""
    workflow: dict[str, Any] = {}
    for block in range(nodes // BLOCK):
        workflow.update(_block(block))
    return workflow


def _block(block: int) -> dict[str, Any]:
    """Nodes `10*block+1` … `10*block+10`: checkpoint, LoRA, two prompts, sampler, VAE, upscaler, save."""

    def nid(offset: int) -> str:
        return str(block * BLOCK + offset + 1)

    def node(class_type: str, **inputs: Any) -> dict[str, Any]:
        return {"class_type": class_type, "inputs": inputs}

    negative = f"blurry, lowres, (embedding:neg_{block}:1.1), watermark"
    sampler = {"seed": 156680208700286 + block, "steps": 20, "cfg": 7.0, "sampler_name": "euler"}
    sampler |= {"scheduler": "normal", "denoise": 1.0}
    links = {
        "model": [nid(1), 0],
        "positive": [nid(2), 0],
        "negative": [nid(3), 0],
        "latent_image": [nid(4), 0],
    }
    return {
        nid(0): node("CheckpointLoaderSimple", ckpt_name=f"ckpt_{block}.safetensors"),
        nid(1): node(
            "LoraLoader",
            lora_name=f"style_{block}.safetensors",
            strength_model=0.8,
            strength_clip=0.8,
            model=[nid(0), 0],
            clip=[nid(0), 1],
        ),
        nid(2): node("CLIPTextEncode", text=PROMPT, clip=[nid(1), 1]),
        nid(3): node("CLIPTextEncode", text=negative, clip=[nid(1), 1]),
        nid(4): node("EmptyLatentImage", width=1024, height=1024, batch_size=1),
        nid(5): node("KSampler", **sampler, **links),
        nid(6): node("VAELoader", vae_name=f"vae_{block}.safetensors"),
        nid(7): node("VAEDecode", samples=[nid(5), 0], vae=[nid(6), 0]),
        nid(8): node("UpscaleModelLoader", model_name=f"up_{block}.pth"),
        nid(9): node("SaveImage", images=[nid(7), 0], filename_prefix=f"bench_{block}"),
    }


def materialise(workflow: dict[str, Any], root: Path) -> tuple[Manifest, ModelPaths, int]:
    """Write every needed file under `<root>/weights/<folder>` and a manifest entry for each."""
    refs = required_weights(workflow)
    weights = []
    for index, ref in enumerate(refs):
        assert ref.folder is not None
        name = ref.name + ".safetensors" if ref.folder == "embeddings" else ref.name
        data = index.to_bytes(4, "big") * 8
        path = root / "weights" / ref.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        weights.append(
            {
                "name": name,
                "folder": ref.folder,
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "urls": [f"https://example.com/{name}"],
                "license": "mit",
                "non_commercial": False,
                "gated": False,
            }
        )
    manifest = parse_manifest({"schema_version": 1, "weights": weights})
    paths = ModelPaths.build(root / "ComfyUI", weights_dir=root / "weights")
    return manifest, paths, len(refs)


def timed(function: Callable[[], object], repeat: int) -> float:
    """Median seconds per call over `repeat` calls (after one warm-up)."""
    function()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench weights-check", description=__doc__)
    parser.add_argument(
        "--nodes", type=int, default=500, help="nodes in the generated workflow (default 500)"
    )
    parser.add_argument("--repeat", type=int, default=200, help="timed runs per measurement (default 200)")
    args, _ = parser.parse_known_args(argv)

    workflow = build_workflow(args.nodes)
    text = json.dumps(workflow).encode()
    with tempfile.TemporaryDirectory(prefix="bench-weights-") as tmp:
        root = Path(tmp)
        manifest, paths, count = materialise(workflow, root)
        records = VerifiedRecords(root / "weights" / ".weightkit" / "verified")
        refs = required_weights(text, manifest)
        report = check_weights(refs, paths)
        assert report.ok and len(report.present) == count, "every generated weight must be found"
        for found in report.present:  # verify once, so the records hold every file
            assert found.ref.entry is not None
            records.sha256(found.path)
        assert all(f.verified for f in check_weights(refs, paths, records).present)
        files = [str(found.path) for found in report.present]

        stat_all = timed(lambda: [os.stat(f) for f in files], args.repeat)
        loads = timed(lambda: json.loads(text), args.repeat)
        parse = timed(lambda: parse_workflow(text), args.repeat)
        extract = timed(lambda: required_weights(text, manifest), args.repeat)
        check = timed(lambda: check_weights(refs, paths), args.repeat)
        check_records = timed(lambda: check_weights(refs, paths, records), args.repeat)
        total = timed(lambda: check_weights(required_weights(text, manifest), paths), args.repeat)

    per = 1e6 / count
    print(f"{args.nodes}-node workflow ({len(text) / 1000:.0f} kB JSON), {count} distinct weights on disk")
    rows = [
        ("reference: os.stat per file", stat_all * per, "µs/weight"),
        ("reference: json.loads of the workflow", loads * 1e6, "µs"),
        ("parse_workflow (json.loads + shape checks)", parse * 1e6, "µs"),
        ("required_weights (parse + extract)", extract * 1e6, "µs"),
        ("check_weights, stat only", check * per, "µs/weight"),
        ("check_weights with verified records", check_records * per, "µs/weight"),
        ("parse + extract + check, per weight", total * per, "µs/weight"),
        ("parse + extract + check, whole workflow", total * 1e3, "ms"),
    ]
    for label, value, unit in rows:
        print(f"  {label:<46} {value:9.2f} {unit}")
    print(f"  check vs a bare stat: {check / stat_all:.2f}x; parse vs json.loads: {parse / loads:.2f}x")
    print(
        f"  per weight {total * per:.2f} µs = {total * per / TARGET_PER_WEIGHT_US:.2f} of the "
        f"{TARGET_PER_WEIGHT_US:.0f} µs target; {args.nodes} nodes {total * 1e3:.2f} ms = "
        f"{total * 1e3 / TARGET_WORKFLOW_MS:.2f} of the {TARGET_WORKFLOW_MS:.0f} ms target"
    )
    return 0
