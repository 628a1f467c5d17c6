"""The model image, built the way `cog build` builds it, run with no network, talked to as Cog is.

For each base variant (`cog-base`: Python as on the CUDA 12 cog-base images; `externally-managed`: a
Python marked externally managed, PEP 668, as on Cog's uv-installed bases) the images of
`model_images.py` are built once; the tests that only post to an image or look into it share one READY
container of it (`exact_container`, `baked_container` in conftest.py), the stop test starts its own;
every container runs with `--network none` and is posted to from inside it. ComfyUI in the image is the
project's stand-in, installed by scripts/install_comfyui.sh from a local mirror.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import time

from PIL import Image

from tests.image.bake_weights import LARGE, UPSCALER
from tests.image.container import NO_PRELOAD, data_uri_bytes, start
from tests.image.dockerfile_local import BAKE_MANIFEST
from tests.image.model_images import ModelImages
from tests.image.node_packs import TINT_NAME, assert_packs_loaded
from tests.image.report import REPORT

STOP_GRACE = 10  # docker stop's default


def invert(width: int, height: int, color: int) -> dict:
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": width, "height": height, "batch_size": 1, "color": color},
        },
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "inverted"}},
    }


def upscale(model: str) -> dict:
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 24, "height": 16, "batch_size": 1, "color": 0x204060},
        },
        "2": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": model}},
        "3": {
            "class_type": "ImageUpscaleWithModel",
            "inputs": {"upscale_model": ["2", 0], "image": ["1", 0]},
        },
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "up"}},
    }


def only_image(prediction: dict) -> Image.Image:
    assert prediction["status"] == "succeeded", prediction.get("error") or prediction
    (uri,) = prediction["output"]
    return Image.open(io.BytesIO(data_uri_bytes(uri)))


def test_a_workflow_runs_and_returns_a_real_image(images: ModelImages, exact_container):
    running = exact_container
    started = time.monotonic()
    answer = running.predict({"workflow_json": json.dumps(invert(64, 48, 0x336699)), "output_format": "png"})
    round_trip_s = time.monotonic() - started
    image = only_image(answer.json())
    assert image.format == "PNG" and image.size == (64, 48)
    assert image.convert("RGB").getpixel((10, 10)) == (0xCC, 0x99, 0x66)  # 0x336699 inverted
    REPORT[images.variant] |= {
        "first_prediction_s": round(round_trip_s, 3),  # posted from inside the container (docker exec)
        "first_prediction_predict_time_s": answer.json()["metrics"].get("predict_time"),
    }


def test_the_installed_torch_set_is_the_pinned_one_and_imports_together(exact_container):
    code = (
        "import torch, torchvision, torchaudio; "
        "boxes = torch.tensor([[0., 0., 2., 2.], [0., 0., 2., 2.1]]); "
        "keep = torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8]), 0.5).tolist(); "
        "print(torch.__version__, torchvision.__version__, torchaudio.__version__, keep)"
    )
    assert exact_container.exec("python", "-c", code) == "2.9.1+cu128 0.24.1+cu128 2.9.1+cu128 [0]"


def test_the_installer_kept_the_torch_set_on_the_bases_python(images: ModelImages, exact_container):
    """The installer run by cog.yaml's build.run passed on this base (the image exists); run again in the
    image, it tells what it decided there: the kept torch set, PEP 668, and nothing left to install."""
    out = exact_container.exec(
        "env", "PYTHON=python", "bash", "/src/scripts/install_comfyui.sh", "/src/ComfyUI"
    )
    assert f"ComfyUI already at {images.base.mirror_commit} in /src/ComfyUI" in out
    assert "keeping torch==2.9.1 torchvision==0.24.1 torchaudio==2.9.1 (pip constraints)" in out
    managed = "is marked externally managed (PEP 668): installing with --break-system-packages" in out
    assert managed == (images.variant == "externally-managed"), out
    assert re.search(r"requirements already installed for /usr(/local)?/bin/python(\n|$)", out), out


def test_an_invalid_input_is_refused_with_422_by_coglets_schema(exact_container):
    running = exact_container
    assert "Loaded OpenAPI schema from .cog/openapi_schema.json" in running.logs()
    schema = json.loads(running.read("/src/.cog/openapi_schema.json"))
    assert schema["components"]["schemas"]["Input"]["properties"]["output_quality"]["maximum"] == 100
    queued = running.logs().count("INFO comfyui: queued prompt")
    for name, value in (("output_quality", 500), ("randomise_seeds", "yes")):
        answer = running.predict({"workflow_json": json.dumps(invert(8, 8, 0)), name: value})
        assert answer.status == 422, answer.body
        (detail,) = answer.json()["detail"]
        assert detail["loc"] == ["body", "input", name]
    # predict() never saw them: the only prediction it logs since is this valid one.
    assert running.predict({"workflow_json": json.dumps(invert(8, 8, 0))}).json()["status"] == "succeeded"
    assert running.logs().count("INFO comfyui: queued prompt") == queued + 1


def test_docker_stop_stops_comfyui_within_the_grace_period(engine, images: ModelImages, container, tmp_path):
    """With the custom node packs installed and loaded by ComfyUI, as cog.yaml's nodekit line left them."""
    # ComfyUI empties and removes `<temp dir>/temp` when it stops on SIGINT (SIGTERM and SIGKILL leave it);
    # a temp dir of its own, outside the predictor's folder (which the predictor removes however ComfyUI
    # ended), on the host's side of a mount, shows which it was.
    tmp = tmp_path / "container-tmp"
    tmp.mkdir()
    comfy_temp = tmp / "comfyui-temp" / "temp"
    running = start(
        engine, container, images.exact, *NO_PRELOAD,
        "-v", f"{tmp}:/tmp", "-e", "COMFYUI_TEMP_DIR=/tmp/comfyui-temp",
    )  # fmt: skip
    assert running.wait_setup()[0] == "READY"
    comfyui = [line for line in running.processes().splitlines() if "main.py --listen 127.0.0.1" in line]
    assert len(comfyui) == 1 and comfy_temp.is_dir(), running.processes()
    assert_packs_loaded(running.logs(), images.base.pack_commits)
    seconds = running.stop(STOP_GRACE)
    assert seconds < STOP_GRACE and running.exit_code() == 0, (
        seconds,
        running.exit_code(),
        running.logs()[-3000:],
    )
    assert not comfy_temp.exists(), "ComfyUI was killed, not stopped"
    assert engine.text("ps", "-q", "--filter", f"name={running.name}") == ""
    REPORT[images.variant]["docker_stop_s"] = round(seconds, 2)


def test_baked_weights_predict_with_the_weights_folder_read_only_and_no_network(images, baked_container):
    sent = re.search(
        r"bake_weights: the loopback server sent (\d+) bytes; the command exited with 0",
        images.log.read_text(errors="replace"),
    )
    assert sent is None or int(sent.group(1)) > 8 << 20  # None: the step was cached, built in an earlier run
    running = baked_container  # read-only, the test kit preloaded from the image, WEIGHTS_STRICT=true
    assert (
        "Read-only file system"
        in running.engine.run(
            "exec", running.name, "touch", "/src/weights/loras/x", check=False
        ).stderr.decode()
    )
    answer = running.predict({"workflow_json": json.dumps(upscale(UPSCALER)), "output_format": "png"}).json()
    image = only_image(answer)
    assert image.size == (48, 32)  # the baked x2 upscaler ran
    assert answer["metrics"]["weights_fetched"] == 0 and answer["metrics"]["weights_required"] == 1
    # What the build fetched from its loopback server is in the image, whole.
    manifest = json.loads(running.read(BAKE_MANIFEST))
    for weight in manifest["weights"]:
        assert weight["urls"][0].startswith("http://127.0.0.1:")
        data = running.read(f"/src/weights/{weight['folder']}/{weight['name']}")
        assert hashlib.sha256(data).hexdigest() == weight["sha256"]
    assert {w["name"] for w in manifest["weights"]} == {UPSCALER, LARGE, TINT_NAME}
