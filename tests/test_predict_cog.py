"""predict.py through the real Cog runtime: coglet serving `Predictor`, real predictions over HTTP.

ComfyUI is the stand-in (`tests/comfyui_standin`), started by the predictor exactly as a checkout would be
(or a real ComfyUI when `COMFYUI_PATH` is set). Weights come from a real HTTP server on 127.0.0.1 that a
test manifest (`WEIGHTS_MANIFEST_EXTRA`) points at. Returned files are decoded and looked at.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import threading
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.cog_server import CogServer, data_uri, data_uri_bytes
from tests.downloadkit import safetensors_bytes
from tests.faultserver import FaultServer

pytestmark = pytest.mark.comfyui

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "tests" / "reference" / "comfyui" / "models"
TINY = (MODELS / "tiny_compact_x2.safetensors").read_bytes()
TINY_PTH = (MODELS / "tiny_compact_x2.pth").read_bytes()
LORA = safetensors_bytes(20_000, seed=7)
USER_LORA = safetensors_bytes(10_000, seed=8)
REAL_COMFYUI = os.environ.get("COMFYUI_PATH", "").strip() or None
COMFYUI_PATH = Path(REAL_COMFYUI or ROOT / "tests" / "comfyui_standin")


def entry(name: str, folder: str, data: bytes, url: str) -> dict:
    return {
        "name": name,
        "folder": folder,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "urls": [url],
        "license": "mit",
        "non_commercial": False,
        "gated": False,
    }


def upscale(model: str, prefix: str = "up", *, size: int = 16, color: int = 0x336699) -> dict:
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": size, "height": size, "batch_size": 1, "color": color},
        },
        "2": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": model}},
        "3": {
            "class_type": "ImageUpscaleWithModel",
            "inputs": {"upscale_model": ["2", 0], "image": ["1", 0]},
        },
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": prefix}},
    }


def with_lora_url(url: str, prefix: str) -> dict:
    """The upscale workflow plus a LoRA loader given a URL; not connected to an output, so ComfyUI (real or
    stand-in) does not run it, but the predictor fetches its weight."""
    workflow = upscale("tiny_compact_x2.safetensors", prefix)
    workflow["9"] = {
        "class_type": "LoraLoaderModelOnly",
        "inputs": {"lora_name": url, "strength_model": 1.0, "model": ["2", 0]},
    }
    return workflow


def invert_input(image: str = "input.png") -> dict:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "inverted"}},
    }


def picture() -> bytes:
    image = Image.new("RGB", (12, 8))
    image.putdata([(x * 20, y * 30, (x * y) % 256) for y in range(8) for x in range(12)])
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def wait_for(condition, *, timeout: float):
    """The first truthy value of `condition()`, polled until `timeout` (the servers offer no event)."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return value


def images(prediction: dict) -> list[Image.Image]:
    assert prediction["status"] == "succeeded", prediction.get("error") or prediction
    return [Image.open(io.BytesIO(data_uri_bytes(uri))) for uri in prediction["output"]]


@pytest.fixture(scope="module")
def weights_server() -> Iterator[FaultServer]:
    with FaultServer() as server:
        server.serve("/w/tiny.safetensors", TINY)
        server.serve("/w/tiny.pth", TINY_PTH)
        server.serve("/w/fixme.safetensors", TINY)
        server.serve("/w/preloaded-by-workflow.safetensors", TINY)
        server.serve("/lora/my_style.safetensors", LORA)
        server.serve(
            "/lora/moved.safetensors",
            b"",
            redirect=f"http://127.0.0.2:{server.port}/lora/my_style.safetensors",
        )
        server.serve("/inputs/picture.png", picture())
        server.serve("/lora/login.pth", b"<!doctype html><html>please log in</html>")
        server.serve(
            "/wf/upscale.json", json.dumps(upscale("tiny_compact_x2.safetensors", "from-url")).encode()
        )
        tar = io.BytesIO()
        with tarfile.open(fileobj=tar, mode="w") as archive:
            info = tarfile.TarInfo("loras/user_trained.safetensors")
            info.size = len(USER_LORA)
            archive.addfile(info, io.BytesIO(USER_LORA))
        server.serve("/user/trained.tar", tar.getvalue())
        yield server


def deployment(base: Path, server: FaultServer, **env: str) -> dict[str, str]:
    """The environment of a deployment in `base`: its own folders, the test manifest, the stand-in."""
    manifest = {
        "schema_version": 1,
        "kits": {
            "test-upscale": {
                "description": "tiny upscaler",
                "weights": ["upscale_models/tiny_compact_x2.safetensors"],
            },
            "test-broken": {
                "description": "a weight whose source is gone",
                "weights": ["upscale_models/gone.safetensors"],
            },
        },
        "weights": [
            entry("tiny_compact_x2.safetensors", "upscale_models", TINY, server.url("/w/tiny.safetensors")),
            entry("tiny_compact_x2.pth", "upscale_models", TINY_PTH, server.url("/w/tiny.pth")),
            entry("fixme.safetensors", "upscale_models", TINY, server.url("/w/fixme.safetensors")),
            entry(
                "by_workflow.safetensors",
                "upscale_models",
                TINY,
                server.url("/w/preloaded-by-workflow.safetensors"),
            ),
            entry("gone.safetensors", "upscale_models", TINY, server.url("/w/missing-on-server.safetensors")),
        ],
    }
    base.mkdir(parents=True, exist_ok=True)
    (base / "manifest.json").write_text(json.dumps(manifest))
    return {
        "COMFYUI_PATH": str(COMFYUI_PATH),
        "WEIGHTS_DIR": str(base / "weights"),
        "WEIGHTS_MANIFEST_EXTRA": str(base / "manifest.json"),
        "COMFYUI_INPUT_DIR": str(base / "input"),
        "COMFYUI_OUTPUT_DIR": str(base / "output"),
        "COMFYUI_TEMP_DIR": str(base / "temp"),
        "WEIGHTS_RETRIES": "0",
        "WEIGHTS_STALL_TIMEOUT": "5",
        "ALLOW_PRIVATE_URLS": "127.0.0.1/32",
        # how to run a real ComfyUI, when COMFYUI_PATH names one (e.g. COMFYUI_ARGS=--cpu)
        **{name: os.environ[name] for name in ("COMFYUI_PYTHON", "COMFYUI_ARGS") if name in os.environ},
        **env,
    }


@pytest.fixture(scope="module")
def cog(tmp_path_factory, weights_server) -> Iterator[CogServer]:
    """A deployment preloading a kit and a workflow, with Cog's `weights` tar, fetching on demand."""
    base = tmp_path_factory.mktemp("deployment")
    corrupt = bytearray(TINY)
    corrupt[:8] = (2**40).to_bytes(8, "little")  # same size, header length absurd: ComfyUI cannot load it
    (base / "weights" / "upscale_models").mkdir(parents=True)
    (base / "weights" / "upscale_models" / "fixme.safetensors").write_bytes(bytes(corrupt))
    (base / "preload").mkdir()
    (base / "preload" / "wf.json").write_text(json.dumps(upscale("by_workflow.safetensors")))
    env = deployment(
        base,
        weights_server,
        BASE_MODEL_KIT="test-upscale",
        PRELOAD_WORKFLOW=str(base / "preload"),
        COG_WEIGHTS=weights_server.url("/user/trained.tar"),
        COMFYUI_STANDIN_STEP_DELAY="0.1",  # ImageUpscaleWithModel: 0.1 s per 512-pixel tile
    )
    with CogServer(env, log_path=base / "cog.log") as server:
        server.base = base
        yield server


# -- setup ------------------------------------------------------------------------------------------------


def test_setup_preloads_the_kit_and_the_workflow_weights_with_a_summary(cog, weights_server):
    health = cog.health()
    assert health["status"] == "READY", cog.log()
    weights = cog.base / "weights" / "upscale_models"
    assert (weights / "tiny_compact_x2.safetensors").read_bytes() == TINY
    assert (weights / "by_workflow.safetensors").read_bytes() == TINY
    assert "preloaded 2 weight file(s): 0 already present" in cog.log()
    assert "setup done in" in cog.log()


def test_setup_unpacks_cogs_weights_tar_into_the_model_folders(cog):
    assert (cog.base / "weights" / "loras" / "user_trained.safetensors").read_bytes() == USER_LORA


def test_setup_with_an_unknown_kit_fails_naming_the_known_ones(tmp_path, weights_server):
    env = deployment(tmp_path, weights_server, BASE_MODEL_KIT="test-upscale,nope")
    with CogServer(env, log_path=tmp_path / "cog.log") as server:
        assert server.health()["status"] == "SETUP_FAILED"
        assert "Unknown model kit 'nope'" in server.log() and "test-upscale" in server.log()


def test_setup_whose_download_fails_fails_unless_best_effort(tmp_path, weights_server):
    env = deployment(tmp_path / "strict", weights_server, BASE_MODEL_KIT="test-broken")
    with CogServer(env, log_path=tmp_path / "strict.log") as server:
        assert server.health()["status"] == "SETUP_FAILED"
        assert "upscale_models/gone.safetensors" in server.log() and "404" in server.log()
    assert not (tmp_path / "strict" / "weights" / "upscale_models" / "gone.safetensors").exists()
    env = deployment(
        tmp_path / "lenient", weights_server, BASE_MODEL_KIT="test-broken", PRELOAD_BEST_EFFORT="true"
    )
    with CogServer(env, log_path=tmp_path / "lenient.log") as server:
        assert server.health()["status"] == "READY"
        assert "preload failed, going on (PRELOAD_BEST_EFFORT)" in server.log()


@pytest.mark.parametrize(
    ("content", "words"),
    [('{"1": {"class_type": ', "not valid JSON"), (None, "neither a file nor a folder")],
    ids=["broken-json", "no-such-file"],
)
def test_setup_with_an_unreadable_preload_workflow_fails_saying_why(tmp_path, weights_server, content, words):
    workflow = tmp_path / "preload.json"
    if content is not None:
        workflow.write_text(content)
    env = deployment(tmp_path / "deployment", weights_server, PRELOAD_WORKFLOW=str(workflow))
    with CogServer(env, log_path=tmp_path / "cog.log") as server:
        assert server.health()["status"] == "SETUP_FAILED"
        assert "Setup could not preload" in server.log() and words in server.log()


def test_stopping_the_cog_server_stops_comfyui_too(tmp_path, weights_server):
    def comfyui_pids() -> list[int]:
        marker = str(tmp_path / "input").encode()
        pids = []
        for proc in Path("/proc").iterdir():
            try:
                command = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if proc.name.isdigit() and b"main.py" in command and marker in command:
                pids.append(int(proc.name))
        return pids

    with CogServer(deployment(tmp_path, weights_server), log_path=tmp_path / "cog.log") as server:
        assert server.health()["status"] == "READY"
        assert len(comfyui_pids()) == 1
    wait_for(lambda: not comfyui_pids(), timeout=120)  # a backstop: it ends with the worker


# -- predict ----------------------------------------------------------------------------------------------


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


def test_outputs_of_a_previous_prediction_never_leak_into_the_next(cog):
    first = cog.predict({"workflow_json": json.dumps(upscale("tiny_compact_x2.safetensors", "first"))})
    second = cog.predict({"workflow_json": json.dumps(upscale("tiny_compact_x2.safetensors", "second"))})
    assert len(images(first)) == 1 and len(images(second)) == 1
    assert not any((cog.base / "output").glob("first*"))


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


def test_cancelling_the_prediction_interrupts_the_prompt_on_comfyui(cog):
    comfyui = re.search(r"ComfyUI answers at (http://127\.0\.0\.1:\d+)", cog.log()).group(1)
    slow = upscale("tiny_compact_x2.safetensors", "cancelled", size=4096)  # 64 tiles: 6 s
    answer: list[dict] = []
    thread = threading.Thread(
        target=lambda: answer.append(cog.put_prediction("cancel-me", {"workflow_json": json.dumps(slow)}))
    )
    thread.start()
    running = wait_for(lambda: answer or get_json(comfyui + "/queue")["queue_running"], timeout=60)
    assert not answer, f"the prediction ended before its prompt was seen running: {answer}"
    prompt_id = running[0][1]
    cog.cancel("cancel-me")
    thread.join(30)
    assert answer and answer[0]["status"] == "canceled", answer
    entry = wait_for(lambda: get_json(f"{comfyui}/history/{prompt_id}").get(prompt_id), timeout=10)
    assert entry["status"]["status_str"] == "error" and not entry["status"]["completed"]
    assert any(message[0] == "execution_interrupted" for message in entry["status"]["messages"])


# -- strict mode -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def strict_cog(tmp_path_factory, weights_server) -> Iterator[CogServer]:
    base = tmp_path_factory.mktemp("strict")
    env = deployment(base, weights_server, BASE_MODEL_KIT="test-upscale", WEIGHTS_STRICT="true")
    with CogServer(env, log_path=base / "cog.log") as server:
        yield server


def test_strict_mode_fails_at_once_listing_what_is_missing_and_how_to_preload(strict_cog, weights_server):
    before = len(weights_server.seen("/w/tiny.pth"))
    prediction = strict_cog.predict({"workflow_json": json.dumps(upscale("tiny_compact_x2.pth"))})
    assert prediction["status"] == "failed"
    error = prediction["error"]
    assert "tiny_compact_x2.pth" in error and "UpscaleModelLoader" in error and "PRELOAD_WORKFLOW" in error
    assert len(weights_server.seen("/w/tiny.pth")) == before


def test_empty_workflow_runs_the_bundled_default_example(strict_cog):
    prediction = strict_cog.predict({"workflow_json": ""})
    assert prediction["status"] == "failed"  # strict, and the SD 1.5 weights are not here
    assert "v1-5-pruned-emaonly.safetensors" in prediction["error"]


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
