"""A ComfyUI attached by URL gets local inputs uploaded and outputs fetched; one started here does not."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from comfyrun.errors import ComfyUIUnavailableError, PromptRejectedError
from comfyrun.http import ComfyHTTP
from comfyrun.process import free_port
from comfyrun.settings import instance_dir
from comfyui import ComfyUI
from tests.inputs_http import LocalServer, Route

pytestmark = pytest.mark.comfyui

INVERT = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "pics/attached.png"}},
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "attached"}},
}


@contextmanager
def attached_with_a_picture(comfy: ComfyUI, local_inputs: Path, output_dir: Path) -> Iterator[ComfyUI]:
    """A second client attached to `comfy` by URL, its local input folder holding `pics/attached.png`."""
    (local_inputs / "pics").mkdir(parents=True)
    Image.new("RGB", (6, 4), (10, 200, 30)).save(local_inputs / "pics" / "attached.png")
    attached = ComfyUI(replace(comfy.settings, url=comfy.url, input_dir=local_inputs, output_dir=output_dir))
    attached.start()
    try:
        yield attached
    finally:
        attached.stop()


def test_attached_comfyui_gets_local_inputs_uploaded_and_outputs_fetched(comfy, tmp_path):
    local_inputs = tmp_path / "inputs"
    with attached_with_a_picture(comfy, local_inputs, tmp_path / "out") as attached:
        workflow, uploaded = attached.upload_inputs(local_inputs, INVERT)
        assert uploaded == ["pics/attached.png"]
        (output,) = attached.run(workflow, check_weights=False)
    assert output.path.parent == tmp_path / "out" / "output"  # fetched through /view
    with Image.open(output.path) as image:
        assert image.size == (6, 4) and image.convert("RGB").getpixel((0, 0)) == pytest.approx(
            (245, 55, 225), abs=1
        )


def test_a_comfyui_started_here_reads_the_input_folder_itself(comfy):
    assert comfy.upload_inputs(comfy.settings.input_dir, INVERT) == (INVERT, [])


def test_an_upload_is_out_of_reach_of_a_later_prediction_that_names_it(comfy, tmp_path):
    local_inputs = tmp_path / "inputs"
    with attached_with_a_picture(comfy, local_inputs, tmp_path / "o") as attached:
        first, _ = attached.upload_inputs(local_inputs, INVERT)
        shutil.rmtree(local_inputs)  # the next prediction: an empty input folder
        local_inputs.mkdir()
        later, uploaded = attached.upload_inputs(local_inputs, INVERT)
        with pytest.raises(PromptRejectedError, match=r"attached\.png"):
            attached.run(later, check_weights=False)
    assert uploaded == [] and later == INVERT
    run_folder, name = first["1"]["inputs"]["image"].rsplit("/pics/", 1)
    assert run_folder.startswith("predictions/") and len(run_folder) == len("predictions/") + 32
    assert (comfy.settings.input_dir / run_folder / "pics" / name).is_file()
    assert not (comfy.settings.input_dir / "pics" / "attached.png").exists()


def test_an_attached_comfyuis_own_folder_is_removed_at_stop(comfy):
    own = instance_dir()
    settings = replace(comfy.settings, url=comfy.url, input_dir=own / "inputs", output_dir=own / "outputs")
    attached = ComfyUI(settings)
    attached.start()
    (own / "inputs").mkdir(parents=True)
    (own / "inputs" / "input.png").write_bytes(b"a user's picture")
    attached.stop()
    assert not own.exists()


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


def test_a_view_download_that_stalls_is_the_clients_error_with_nothing_left(tmp_path):
    with LocalServer() as server:
        server.routes["/view"] = Route(b"", announce=1000, stall=True)  # headers, then nothing
        http = ComfyHTTP(server.url(""), timeout=0.5)
        with pytest.raises(ComfyUIUnavailableError, match=r"GET /view of big\.png broke off"):
            http.download(filename="big.png", subfolder="", type="output", destination=tmp_path / "big.png")
    assert list(tmp_path.iterdir()) == []
