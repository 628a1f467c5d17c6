"""Cancelling a prediction interrupts its prompt on ComfyUI."""

from __future__ import annotations

import json
import re
import threading

import pytest

from tests.cog_deployment import get_json, upscale, wait_for

pytestmark = pytest.mark.comfyui


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
