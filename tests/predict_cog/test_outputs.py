"""What a prediction returns: only its own outputs, a PNG where WebP cannot hold it, temp files on request."""

from __future__ import annotations

import json

import pytest

from tests.cog_deployment import images, upscale

pytestmark = pytest.mark.comfyui


def test_outputs_of_a_previous_prediction_never_leak_into_the_next(cog):
    first = cog.predict({"workflow_json": json.dumps(upscale("tiny_compact_x2.safetensors", "first"))})
    second = cog.predict({"workflow_json": json.dumps(upscale("tiny_compact_x2.safetensors", "second"))})
    assert len(images(first)) == 1 and len(images(second)) == 1
    assert not any((cog.base / "output").glob("first*"))


def test_an_image_wider_than_webp_allows_is_returned_as_png_not_lost(cog):
    wide = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 16384, "height": 64, "batch_size": 1, "color": 7},
        },
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "wide"}},
    }
    prediction = cog.predict({"workflow_json": json.dumps(wide), "output_format": "webp"})
    (image,) = images(prediction)
    assert (image.format, image.size) == ("PNG", (16384, 64))
    assert "cannot be written as webp" in prediction["logs"]


def test_temp_files_are_returned_only_when_asked(cog):
    workflow = upscale("tiny_compact_x2.safetensors", "saved")
    workflow["5"] = {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}
    assert len(images(cog.predict({"workflow_json": json.dumps(workflow)}))) == 1
    with_temp = images(cog.predict({"workflow_json": json.dumps(workflow), "return_temp_files": True}))
    assert sorted(image.size for image in with_temp) == [(16, 16), (32, 32)]
