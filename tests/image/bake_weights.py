"""Run a command with a test kit's weights served from a loopback HTTP server, inside an image build.

    python tests/image/bake_weights.py --manifest /src/.image-test/manifest.json -- COMMAND...

The image test switches on cog.yaml's weight-baking line (`weightkit download --kit ...`) under this
wrapper, in the same `RUN` (so the build needs nothing from outside): it makes the weights of kit
`image-test` (a tiny RealESRGAN-Compact x2 upscaler that the ComfyUI stand-in loads, an 8 MiB file, and
the `.tint` that the test's custom node pack loads from the folder it registers, `node_packs.py`),
serves them on 127.0.0.1 (tests/faultserver.py, with ranges), writes a manifest naming them (kept in the
image at `--manifest`, for the running container), runs COMMAND with `WEIGHTS_MANIFEST_EXTRA` set to it,
says how many bytes the server sent, and exits with COMMAND's status.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import struct
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.faultserver import FaultServer
from tests.image.node_packs import TINT, TINT_FOLDER, TINT_NAME
from tests.manifest_entries import entry

KIT = "image-test"
UPSCALER = "image_test_compact_x2.safetensors"
LARGE = "image_test_8mib.safetensors"


def safetensors(tensors: dict[str, tuple[int, ...]], seed: int) -> bytes:
    """A valid safetensors file of float32 tensors with the given shapes and random values."""
    rng = random.Random(seed)
    header, data, offset = {}, bytearray(), 0
    for name, shape in tensors.items():
        count = 1
        for dim in shape:
            count *= dim
        data += struct.pack(f"<{count}f", *(rng.uniform(-0.1, 0.1) for _ in range(count)))
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + 4 * count]}
        offset += 4 * count
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + bytes(data)


def compact_x2() -> bytes:
    """SRVGGNetCompact's keys for 3 channels, 8 features, one conv: body.2 has 3 * 2 * 2 outputs (x2)."""
    return safetensors(
        {
            "body.0.weight": (8, 3, 3, 3),
            "body.0.bias": (8,),
            "body.1.weight": (8,),
            "body.2.weight": (12, 8, 3, 3),
            "body.2.bias": (12,),
        },
        seed=1,
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", type=Path, required=True, help="where the kit's manifest is written")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- and the command to run")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    weights = {
        ("upscale_models", UPSCALER): compact_x2(),
        ("loras", LARGE): safetensors({"lora.weight": (2 * 1024 * 1024,)}, seed=2),
        (TINT_FOLDER, TINT_NAME): TINT,
    }
    with FaultServer() as server:
        for (folder, name), data in weights.items():
            server.serve(f"/{folder}/{name}", data)
        manifest = {
            "schema_version": 1,
            "weights": [entry(n, f, d, server.url(f"/{f}/{n}")) for (f, n), d in weights.items()],
            "kits": {KIT: {"description": "image test weights", "weights": [f"{f}/{n}" for f, n in weights]}},
        }
        args.manifest.parent.mkdir(parents=True, exist_ok=True)
        args.manifest.write_text(json.dumps(manifest, indent=2))
        print(f"bake_weights: serving kit {KIT} on {server.url('/')} for: {' '.join(command)}", flush=True)
        status = subprocess.run(
            command, env={**os.environ, "WEIGHTS_MANIFEST_EXTRA": str(args.manifest)}
        ).returncode
        sent = server.bytes_served()
    print(
        f"bake_weights: the loopback server sent {sent} bytes; the command exited with {status}", flush=True
    )
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
