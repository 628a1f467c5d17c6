"""What the ComfyUI client tests share: the upscale workflow (slow enough to interrupt at SLOW), a log
message as an event, a run in a thread, and a prompt's history."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from comfyui import ComfyUI

ROOT = Path(__file__).resolve().parent.parent
STANDIN = ROOT / "tests" / "comfyui_standin"
MODELS = ROOT / "tests" / "reference" / "comfyui" / "models"
TINY = "tiny_compact_x2.safetensors"
ATTACHED = os.environ.get("COMFYUI_URL", "").strip() and not os.environ.get("COMFYUI_PATH", "").strip()
needs_own_server = pytest.mark.skipif(
    bool(ATTACHED), reason="needs a ComfyUI started here (COMFYUI_URL is set)"
)


def upscale(prefix: str, *, model: str = TINY, size: int = 64) -> dict:
    """EmptyImage → UpscaleModelLoader → ImageUpscaleWithModel (a step per 512px tile) → SaveImage."""
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": size, "height": size, "batch_size": 1, "color": 3368601},
        },
        "2": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": model}},
        "3": {
            "class_type": "ImageUpscaleWithModel",
            "inputs": {"upscale_model": ["2", 0], "image": ["1", 0]},
        },
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": prefix}},
    }


SLOW = 1024  # 9 tiles of 0.1 s each on the stand-in (COMFYUI_STANDIN_STEP_DELAY); ~1 s on a real CPU
# Real ComfyUI checks for an interrupt between tiles; a run that must outlast a 0.3 s limit needs more.
SLOWER = SLOW * (4 if os.environ.get("COMFYUI_PATH", "").strip() or ATTACHED else 1)


class Seen(threading.Event):
    """Set when a watched log message appears; `message` is the first such message."""

    message = ""


@contextlib.contextmanager
def logged(fragment: str, logger: str = "comfyrun.follow") -> Iterator[Seen]:
    """An event set when `logger` logs a message containing `fragment`."""
    seen = Seen()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if fragment in record.getMessage() and not seen.is_set():
                seen.message = record.getMessage()
                seen.set()

    target, handler = logging.getLogger(logger), Watch()
    level = target.level
    target.setLevel(logging.INFO)
    target.addHandler(handler)
    try:
        yield seen
    finally:
        target.removeHandler(handler)
        target.setLevel(level)


def history(comfy: ComfyUI, prompt_id: str | None = None, *, settle: float = 10.0) -> dict:
    """`GET /history[/id]`; with an id, waits (up to `settle` s) until ComfyUI has recorded that prompt."""
    deadline = time.monotonic() + settle
    while True:
        route = f"/history/{prompt_id}" if prompt_id else "/history"
        answer = json.loads(urllib.request.urlopen(comfy.url + route, timeout=10).read())
        if prompt_id is None or prompt_id in answer or time.monotonic() > deadline:
            return answer.get(prompt_id, {}) if prompt_id else answer
        time.sleep(0.05)


def in_thread(call) -> tuple[threading.Thread, list]:
    """Run `call` in a thread; the list receives what it returned or raised."""
    result: list = []

    def target() -> None:
        try:
            result.append(call())
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    return thread, result
