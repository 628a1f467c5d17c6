"""Weights during a prediction: preloaded, fetched on demand, given by URL, repaired."""

from __future__ import annotations

import json

import pytest

from tests.cog_deployment import LORA, REAL_COMFYUI, TINY, TINY_PTH, images, upscale, with_lora_url

pytestmark = pytest.mark.comfyui


def test_preloaded_weight_runs_without_any_fetch(cog, weights_server):
    served = weights_server.bytes_served()
    prediction = cog.predict({"workflow_json": json.dumps(upscale("tiny_compact_x2.safetensors"))})
    (image,) = images(prediction)
    assert image.format == "WEBP" and image.size == (32, 32)
    if REAL_COMFYUI is None:  # the stand-in resizes; the real random-weight upscaler changes colours
        assert image.convert("RGB").getpixel((16, 16)) == pytest.approx((0x33, 0x66, 0x99), abs=3)
    assert weights_server.bytes_served() == served
    assert prediction["metrics"]["weights_fetched"] == 0 and prediction["metrics"]["weights_required"] == 1


def test_missing_weight_is_fetched_on_demand_then_used(cog, weights_server):
    before = len(weights_server.seen("/w/tiny.pth"))
    prediction = cog.predict(
        {"workflow_json": json.dumps(upscale("tiny_compact_x2.pth")), "output_format": "png"}
    )
    (image,) = images(prediction)
    assert image.format == "PNG" and image.size == (32, 32)
    assert len(weights_server.seen("/w/tiny.pth")) > before
    assert prediction["metrics"]["weights_fetched"] == 1
    assert (cog.base / "weights" / "upscale_models" / "tiny_compact_x2.pth").read_bytes() == TINY_PTH


def test_lora_given_by_url_is_fetched_into_its_model_folder_under_a_stable_name(cog, weights_server):
    workflow = with_lora_url(weights_server.url("/lora/my_style.safetensors"), "with-lora")
    prediction = cog.predict({"workflow_json": json.dumps(workflow)})
    assert len(images(prediction)) == 1
    (fetched,) = (cog.base / "weights" / "loras").glob("*-my_style.safetensors")
    assert fetched.read_bytes() == LORA
    again = cog.predict({"workflow_json": json.dumps(workflow)})
    assert again["status"] == "succeeded", again.get("error")
    assert len(list((cog.base / "weights" / "loras").glob("[!.]*my_style*"))) == 1  # one stable name


def test_lora_url_serving_a_web_page_is_refused_and_not_left_to_load(cog, weights_server):
    workflow = with_lora_url(weights_server.url("/lora/login.pth"), "html")
    prediction = cog.predict({"workflow_json": json.dumps(workflow)})
    assert prediction["status"] == "failed" and "web page" in prediction["error"]
    assert not list((cog.base / "weights" / "loras").glob("[!.]*login*"))


def test_lora_url_redirecting_to_a_private_address_is_refused(cog, weights_server):
    workflow = with_lora_url(weights_server.url("/lora/moved.safetensors"), "redirected")
    prediction = cog.predict({"workflow_json": json.dumps(workflow)})
    assert prediction["status"] == "failed"
    assert "127.0.0.2" in prediction["error"] and "ALLOW_PRIVATE_URLS" in prediction["error"]
    assert not list((cog.base / "weights" / "loras").glob("[!.]*moved*"))  # nothing under a final name


def test_corrupt_weight_is_repaired_during_predict(cog, weights_server):
    prediction = cog.predict({"workflow_json": json.dumps(upscale("fixme.safetensors", "repaired"))})
    (image,) = images(prediction)
    assert image.size == (32, 32)
    assert (cog.base / "weights" / "upscale_models" / "fixme.safetensors").read_bytes() == TINY
    assert len(list((cog.base / "weights" / ".weightkit" / "quarantine" / "upscale_models").iterdir())) == 1
    assert "looks corrupt" in prediction["logs"] or "quarantined" in cog.log()
