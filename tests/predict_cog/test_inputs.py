"""What a prediction is given: workflows (JSON or URL) and the refusals of bad ones, input files, values."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from PIL import Image

from tests.cog_deployment import images, invert_input, picture, upscale
from tests.cog_server import data_uri

pytestmark = pytest.mark.comfyui


def test_input_file_is_placed_and_the_returned_image_is_what_the_workflow_made(cog):
    source = picture()
    prediction = cog.predict(
        {
            "workflow_json": json.dumps(invert_input()),
            "input_file": data_uri(source, "image/png"),
            "output_format": "png",
        }
    )
    (image,) = images(prediction)
    original = Image.open(io.BytesIO(source)).convert("RGB")
    assert image.size == original.size
    for x, y in [(0, 0), (5, 3), (11, 7)]:
        expected = tuple(255 - c for c in original.getpixel((x, y)))
        assert image.convert("RGB").getpixel((x, y)) == pytest.approx(expected, abs=1)


def test_ui_format_workflow_is_refused_saying_how_to_export_the_api_format(cog):
    ui = {"last_node_id": 3, "last_link_id": 1, "nodes": [{"id": 1, "type": "SaveImage"}], "links": []}
    prediction = cog.predict({"workflow_json": json.dumps(ui)})
    assert prediction["status"] == "failed"
    assert "API" in prediction["error"] and "Export" in prediction["error"]


def test_a_failed_prediction_carries_cogs_prefix_then_our_message_once(cog):
    prediction = cog.predict({"workflow_json": '{"1": {"class_type": "SaveImage",, }'})
    prefix = "Prediction failed: Prediction failed: "  # coglet 0.23.1 adds both, to any exception
    assert prediction["error"].startswith(prefix)
    type_name, _, message = prediction["error"].removeprefix(prefix).partition(": ")
    assert type_name.isidentifier() and "Prediction failed" not in message


def test_broken_json_says_where(cog):
    prediction = cog.predict({"workflow_json": '{"1": {"class_type": "SaveImage",, }'})
    assert prediction["status"] == "failed"
    assert "line 1" in prediction["error"] and "column" in prediction["error"]


def test_workflow_given_by_url(cog, weights_server):
    prediction = cog.predict({"workflow_json": weights_server.url("/wf/upscale.json")})
    (image,) = images(prediction)
    assert image.size == (32, 32)


def test_workflow_url_to_cloud_metadata_is_refused(cog):
    prediction = cog.predict({"workflow_json": "http://169.254.169.254/latest/meta-data/"})
    assert prediction["status"] == "failed"
    assert "169.254.169.254" in prediction["error"] and "ALLOW_PRIVATE_URLS" in prediction["error"]


def test_zip_of_inputs_with_a_parent_member_is_refused_and_nothing_is_unpacked(cog):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("ok.png", picture())
        zipped.writestr("../escape.png", picture())
    prediction = cog.predict(
        {
            "workflow_json": json.dumps(invert_input("ok.png")),
            "input_file": data_uri(archive.getvalue(), "application/zip"),
        }
    )
    assert prediction["status"] == "failed" and "../escape.png" in prediction["error"]
    assert list((cog.base / "input").iterdir()) == []
    assert not (cog.base / "escape.png").exists()


def test_invalid_input_values_are_refused_by_cog(strict_cog):
    for inputs in ({"output_format": "bmp"}, {"output_quality": 0}):
        prediction = strict_cog.predict(
            {"workflow_json": json.dumps(upscale("tiny_compact_x2.safetensors")), **inputs}
        )
        assert prediction.get("status") == "failed" or prediction.get("http_status") == 422, prediction


def test_every_predict_input_is_described():
    import inspect

    from predict import Predictor

    parameters = inspect.signature(Predictor.predict).parameters
    inputs = {name: p.default for name, p in parameters.items() if name != "self"}
    assert set(inputs) == {
        "workflow_json",
        "input_file",
        "return_temp_files",
        "output_format",
        "output_quality",
        "randomise_seeds",
        "force_reset_cache",
    }
    assert all(getattr(field, "description", None) for field in inputs.values())
