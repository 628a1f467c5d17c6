"""Running workflows: progress logged, cached re-runs, temp outputs on request, rejected workflows."""

from __future__ import annotations

import logging

import pytest
from PIL import Image

from comfyrun.errors import PromptRejectedError
from tests.comfyui_watch import ATTACHED, needs_own_server, upscale

pytestmark = pytest.mark.comfyui


def test_normal_run_logs_nodes_and_progress_and_returns_the_saved_image(comfy, caplog):
    with caplog.at_level(logging.INFO, logger="comfyrun.follow"):
        outputs = comfy.run(upscale("normal"), check_weights=not ATTACHED)
    (output,) = outputs
    assert (output.node_id, output.kind, output.type) == ("4", "images", "output")
    with Image.open(output.path) as image:
        assert image.size == (128, 128)
    assert "running node 3 (ImageUpscaleWithModel)" in caplog.text
    assert "node 3 (ImageUpscaleWithModel): 100%" in caplog.text


def test_cached_rerun_runs_no_node_and_returns_the_same_outputs(comfy, caplog):
    first = comfy.run(upscale("cached"))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="comfyrun.follow"):
        again = comfy.run(upscale("cached"))
    assert [o.filename for o in again] == [o.filename for o in first]
    assert "cached, not run again: node 1 (EmptyImage), node 2" in caplog.text
    assert "running node" not in caplog.text


@needs_own_server
def test_preview_images_are_temp_files_returned_only_on_request(comfy):
    workflow = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }
    assert comfy.run(workflow) == []
    (preview,) = comfy.run(workflow, include_temp=True)
    assert preview.type == "temp" and preview.path.is_file()
    assert preview.path.parent == comfy.settings.temp_dir / "temp"


def test_rejected_workflow_lists_the_failing_node_input_and_value(comfy):
    workflow = upscale("rejected")
    workflow["5"] = {
        "class_type": "ImageScale",
        "inputs": {"image": ["1", 0], "upscale_method": "magic", "width": 8, "height": 8, "crop": "disabled"},
    }
    workflow["6"] = {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "rejected"}}
    workflow["1"]["inputs"]["width"] = 0
    with pytest.raises(PromptRejectedError) as info:
        comfy.run(workflow, check_weights=False)
    message = str(info.value)
    assert "Node 1 (EmptyImage): input 'width': Value 0 smaller than min of 1." in message
    assert "Node 5 (ImageScale): input 'upscale_method': 'magic' is not one of 'nearest-exact'" in message
