"""Two predictors on one host, with no folders configured: each has folders of its own under the system
temp folder, so neither empties the other's inputs or outputs, and each removes its own at exit."""

from __future__ import annotations

import io
import json
import threading

import pytest
from PIL import Image

from tests.cog_deployment import deployment, images, weights_server
from tests.cog_server import CogServer, data_uri

pytestmark = pytest.mark.comfyui
__all__ = ["weights_server"]

FOLDERS = ("COMFYUI_INPUT_DIR", "COMFYUI_OUTPUT_DIR", "COMFYUI_TEMP_DIR")


def coloured(rgb: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), rgb).save(out, "PNG")
    return out.getvalue()


def strongest(rgb) -> int:
    """The channel that dominates (a real ComfyUI's random-weight upscaler shifts colours somewhat)."""
    return max(range(3), key=lambda channel: rgb[channel])


def upscaled_input(prefix: str) -> str:
    return json.dumps(
        {
            "1": {"class_type": "LoadImage", "inputs": {"image": "input.png"}},
            "2": {
                "class_type": "UpscaleModelLoader",
                "inputs": {"model_name": "tiny_compact_x2.safetensors"},
            },
            "3": {
                "class_type": "ImageUpscaleWithModel",
                "inputs": {"upscale_model": ["2", 0], "image": ["1", 0]},
            },
            "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": prefix}},
        }
    )


def test_two_predictors_with_default_folders_never_touch_each_others_files(tmp_path, weights_server):
    shared_tmp = tmp_path / "tmp"  # the host's /tmp, as both see it
    shared_tmp.mkdir()
    servers = []
    for name in ("a", "b"):
        env = deployment(tmp_path / name, weights_server, BASE_MODEL_KIT="test-upscale")
        env = {k: v for k, v in env.items() if k not in FOLDERS}
        env |= {"TMPDIR": str(shared_tmp), "COMFYUI_STANDIN_STEP_DELAY": "0.1"}
        servers.append(CogServer(env, log_path=tmp_path / f"{name}.log"))
    colours = {"a": (200, 30, 30), "b": (30, 30, 200)}
    results: dict[str, list[dict]] = {"a": [], "b": []}

    def predict(name: str, cog: CogServer) -> None:
        for n in range(6):
            inputs = {"workflow_json": upscaled_input(f"{name}{n}"), "output_format": "png"}
            inputs["input_file"] = data_uri(coloured(colours[name]), "image/png")
            results[name].append(cog.predict(inputs))

    with servers[0], servers[1]:
        own = sorted(p.name for p in shared_tmp.glob("comfyui-[0-9]*"))
        threads = [threading.Thread(target=predict, args=pair) for pair in zip("ab", servers, strict=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
    for name, predictions in results.items():
        assert len(predictions) == 6
        for prediction in predictions:
            (image,) = images(prediction)
            pixel = image.convert("RGB").getpixel((16, 16))
            assert strongest(pixel) == strongest(colours[name]), (name, pixel)  # its own input, upscaled
    assert len(own) == 2, own  # a folder each, in the host's temp folder
    assert not list(shared_tmp.glob("comfyui-[0-9]*"))  # each removed its own at exit
