"""A ComfyUI attached by URL gets local inputs uploaded and outputs fetched; one started here does not."""

from __future__ import annotations

from dataclasses import replace

import pytest
from PIL import Image

from comfyrun.process import free_port
from comfyui import ComfyUI

pytestmark = pytest.mark.comfyui


def test_attached_comfyui_gets_local_inputs_uploaded_and_outputs_fetched(comfy, tmp_path):
    local_inputs = tmp_path / "inputs"
    (local_inputs / "pics").mkdir(parents=True)
    Image.new("RGB", (6, 4), (10, 200, 30)).save(local_inputs / "pics" / "attached.png")
    attached = ComfyUI(
        replace(comfy.settings, url=comfy.url, input_dir=local_inputs, output_dir=tmp_path / "out")
    )
    attached.start()
    try:
        assert attached.upload_inputs(local_inputs) == ["pics/attached.png"]
        workflow = {
            "1": {"class_type": "LoadImage", "inputs": {"image": "pics/attached.png"}},
            "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
            "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "attached"}},
        }
        (output,) = attached.run(workflow, check_weights=False)
    finally:
        attached.stop()
    assert output.path.parent == tmp_path / "out" / "output"  # fetched through /view
    with Image.open(output.path) as image:
        assert image.size == (6, 4) and image.convert("RGB").getpixel((0, 0)) == pytest.approx(
            (245, 55, 225), abs=1
        )


def test_a_comfyui_started_here_reads_the_input_folder_itself(comfy):
    assert comfy.upload_inputs(comfy.settings.input_dir) == []


def test_proxy_variables_do_not_reach_the_calls_to_comfyui(comfy, tmp_path, monkeypatch):
    closed = f"http://127.0.0.1:{free_port()}"
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, closed)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    attached = ComfyUI(replace(comfy.settings, url=comfy.url, output_dir=tmp_path / "out"))
    attached.start()  # waits for /system_stats
    try:
        workflow = {
            "1": {
                "class_type": "EmptyImage",
                "inputs": {"width": 4, "height": 4, "batch_size": 1, "color": 0},
            },
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "proxied"}},
        }
        (output,) = attached.run(workflow, check_weights=False)  # the websocket, /history, /view
    finally:
        attached.stop()
    assert output.path.is_file()
