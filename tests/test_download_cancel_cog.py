"""Issue 9 item 3 through the real Cog runtime: cancelling a prediction while its missing weight downloads
stops the download within a second, leaves the part file resumable, and the next prediction resumes it.

coglet cancels a sync predictor by raising `CancelationException` in the predict thread; the download
must see it at once, not when the file is complete. The weight comes from the fault server at a
capped rate per connection, so the whole file would take about 12 s; the server counts every byte.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from tests.cog_deployment import TINY, deployment, entry, images, upscale
from tests.cog_server import CogServer
from tests.downloadkit import safetensors_bytes
from tests.faultserver import FaultServer

pytestmark = pytest.mark.comfyui

SLOW = safetensors_bytes(6 << 20, seed=11)
CHUNK = 256 << 10


def _with_slow_lora(prefix: str) -> dict:
    """The tiny upscale workflow, plus a LoRA loader the predictor must fetch the weight of (not
    connected to an output, so ComfyUI does not run it)."""
    workflow = upscale("tiny_compact_x2.safetensors", prefix)
    workflow["9"] = {
        "class_type": "LoraLoaderModelOnly",
        "inputs": {"lora_name": "slow_style.safetensors", "strength_model": 1.0, "model": ["2", 0]},
    }
    return workflow


def test_cancelling_a_prediction_stops_its_weight_download_and_the_next_one_resumes(tmp_path):
    with FaultServer() as server:
        server.serve("/w/tiny.safetensors", TINY)
        server.serve("/w/slow.safetensors", SLOW, rate=256 << 10)  # 2 connections: 512 KiB/s
        env = deployment(
            tmp_path,
            server,
            BASE_MODEL_KIT="test-upscale",
            WEIGHTS_CHUNK_SIZE="256K",
            WEIGHTS_CONNECTIONS_PER_FILE="2",
            WEIGHTS_STALL_TIMEOUT="10",
        )
        manifest = json.loads((tmp_path / "manifest.json").read_text())
        manifest["weights"].append(
            entry("slow_style.safetensors", "loras", SLOW, server.url("/w/slow.safetensors"))
        )
        (tmp_path / "manifest.json").write_text(json.dumps(manifest))
        with CogServer(env, log_path=tmp_path / "cog.log") as cog:
            assert cog.health()["status"] == "READY", cog.log()
            inputs = {"workflow_json": json.dumps(_with_slow_lora("cancelled"))}
            answer: list[dict] = []
            thread = threading.Thread(
                target=lambda: answer.append(cog.put_prediction("cancel-download", inputs))
            )
            thread.start()
            assert server.wait_for_bytes("/w/slow.safetensors", 1 << 20, timeout=60), cog.log()
            cancelled_at = time.monotonic()
            cog.cancel("cancel-download")
            thread.join(60)
            latency = time.monotonic() - cancelled_at
            served = server.bytes_served("/w/slow.safetensors")
            print(
                f"cancel through coglet to the prediction's answer: {latency * 1000:.0f} ms, {served} bytes"
            )
            assert answer and answer[0]["status"] == "canceled", answer
            assert latency < 2.5 and served < len(SLOW) // 2, (latency, served)
            time.sleep(0.3)  # nothing of the cancelled download may still be reading
            assert server.bytes_served("/w/slow.safetensors") - served < CHUNK
            folder = tmp_path / "weights" / "loras"
            assert not (folder / "slow_style.safetensors").exists()
            assert any('"active": false' in p.read_text() for p in folder.glob("*.part.json"))

            server.serve("/w/slow.safetensors", SLOW)  # now at full speed
            second = cog.predict({"workflow_json": json.dumps(_with_slow_lora("resumed"))})
            assert len(images(second)) == 1
            assert (folder / "slow_style.safetensors").read_bytes() == SLOW
            # the second prediction fetched only what the first had not (and what was in flight)
            assert server.bytes_served("/w/slow.safetensors") <= len(SLOW) + 2 * CHUNK
            assert second["metrics"]["weights_fetched_bytes"] <= len(SLOW) - served + 2 * CHUNK
