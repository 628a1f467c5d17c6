"""What the ComfyUI client costs per prompt, and how soon a cancellation reaches ComfyUI.

Against the replay server (`tests/comfyui_replay.py`, real sockets on 127.0.0.1) playing the recorded
case `a` (17 websocket messages, one output image):

- per prompt: `ComfyUI.run()` (submit, follow, history, download the output) next to a bare reference made
  in the same run with the same libraries and exchanges and no logic at all (POST /prompt, read the
  websocket to the end, GET /history, GET /view);
- cancellation: the time from injecting `CancelationException` into a thread waiting on a running prompt
  to that thread having posted `/interrupt` and ended, next to `POLL_SECONDS`, its designed bound.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import statistics
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import websocket
from cog import CancelationException

from comfyrun.follow import POLL_SECONDS
from comfyrun.settings import RuntimeSettings
from comfyui import ComfyUI
from tests.comfyui_replay import ReplayServer, load_case


def _bare_run(
    server: ReplayServer, ws: websocket.WebSocket, client_id: str, workflow: dict, out: Path
) -> None:
    body = json.dumps({"prompt": workflow, "client_id": client_id}).encode()
    request = urllib.request.Request(f"{server.url}/prompt", data=body, method="POST")
    prompt_id = json.loads(urllib.request.urlopen(request).read())["prompt_id"]
    while True:
        message = ws.recv()
        if isinstance(message, str):
            data = json.loads(message)
            if (
                data["type"] == "executing"
                and data["data"].get("node") is None
                and "prompt_id" in data["data"]
            ):
                break
    entry = json.loads(urllib.request.urlopen(f"{server.url}/history/{prompt_id}").read())[prompt_id]
    image = entry["outputs"]["3"]["images"][0]
    query = f"filename={image['filename']}&subfolder=&type=output"
    (out / image["filename"]).write_bytes(urllib.request.urlopen(f"{server.url}/view?{query}").read())


def _cancel_latency(server: ReplayServer, comfy: ComfyUI) -> float:
    case = load_case("e")
    script = server.play(case, hold_before=len(case.frames) - 3)
    done: list[float] = []

    def predict() -> None:
        try:
            comfy.run(case.workflow)
        except CancelationException:
            done.append(time.perf_counter())

    thread = threading.Thread(target=predict)
    thread.start()
    script.held.wait(10)
    time.sleep(0.05)  # let the client settle into its read loop
    injected = time.perf_counter()
    assert thread.ident is not None
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread.ident), ctypes.py_object(CancelationException)
    )
    thread.join(10)
    assert done and server.posted("/interrupt"), "the cancellation did not interrupt the prompt"
    return done[0] - injected


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench comfyui-client")
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args(argv)
    logging.getLogger("comfyui").setLevel(logging.ERROR)  # each cancellation logs a warning
    server = ReplayServer().start()
    case = load_case("a")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = RuntimeSettings(url=server.url, output_dir=Path(tmp), run_timeout=30)
            comfy = ComfyUI(settings)
            comfy.start()
            ours, bare = [], []
            client_id = uuid.uuid4().hex  # the bare client, like ours, keeps one websocket for all prompts
            ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}/ws?clientId={client_id}")
            for _ in range(args.runs):
                server.reset()
                server.play(case)
                started = time.perf_counter()
                _bare_run(server, ws, client_id, case.workflow, Path(tmp))
                bare.append(time.perf_counter() - started)
                server.play(case)
                started = time.perf_counter()
                comfy.run(case.workflow)
                ours.append(time.perf_counter() - started)
            ws.close()
            cancels = []
            for _ in range(5):
                server.reset()
                cancels.append(_cancel_latency(server, comfy))
            comfy.stop()
    finally:
        server.stop()
    ours_ms, bare_ms = statistics.median(ours) * 1000, statistics.median(bare) * 1000
    print(f"per prompt, median of {args.runs}: ComfyUI.run {ours_ms:.2f} ms, bare exchanges {bare_ms:.2f} ms")
    print(f"  ratio {ours_ms / bare_ms:.2f}x (the difference is the client's own work per prompt)")
    worst = max(cancels)
    print(f"cancellation to /interrupt posted and thread ended: worst of 5 {worst * 1000:.0f} ms")
    print(f"  ratio to POLL_SECONDS ({POLL_SECONDS * 1000:.0f} ms): {worst / POLL_SECONDS:.2f}")
    return 0 if worst < 2 * POLL_SECONDS + 0.5 else 1
