"""The recordings of a real ComfyUI v0.3.64 (tests/reference/comfyui), and a run held against them.

A case is run on a server (`run_case`) and compared with its recording (`assert_matches_recording`):
the HTTP answer to `POST /prompt`, every websocket message in order (text and binary), the history
entry and the output files. What differs between any two runs is normalised away: prompt and client
ids, timestamps, tracebacks, PNG bytes, preview file names' random part.
"""

from __future__ import annotations

import io
import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from standin_process import ComfyProcess, attached_url
from standin_wire import Answer, Frame, Socket, get, post

# The marks of a module that replays recordings on servers it starts.
REPLAYS = [
    pytest.mark.comfyui,
    pytest.mark.skipif(
        attached_url() is not None, reason="replays on servers it starts; COMFYUI_URL names one"
    ),
]

REF = Path(__file__).resolve().parent / "reference" / "comfyui"
MODELS = REF / "models"
PREVIEW_NAME = re.compile(r"_temp_[a-z]{5}_")


def ref(name: str) -> Any:
    return json.loads((REF / name).read_text())


def workflow(case: str) -> dict[str, Any]:
    path = REF / f"workflow_{case}.json"
    if path.exists():
        return json.loads(path.read_text())
    (entry,) = ref(f"history_{case}.json").values()
    return entry["prompt"][2]


def png(rgb: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, rgb).save(buffer, "PNG")
    return buffer.getvalue()


# -- normalising what differs between runs -----------------------------------------------------------


def normalize(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "timestamp":
                assert isinstance(item, int)
                out[key] = "<timestamp>"
            elif key == "traceback":
                assert isinstance(item, list) and all(isinstance(line, str) for line in item)
                out[key] = "<traceback>"
            elif key == "sid":
                assert isinstance(item, str) and item
                out[key] = "<sid>"
            elif key in ("current_outputs", "executed", "dependent_outputs"):  # sets in ComfyUI
                out[key] = sorted(item)
            elif key == "errors":  # ComfyUI checks inputs in set order
                out[key] = sorted((normalize(e, ids) for e in item), key=json.dumps)
            else:
                out[key] = normalize(item, ids)
        return out
    if isinstance(value, list):
        return [normalize(item, ids) for item in value]
    if isinstance(value, str):
        return ids.get(value, PREVIEW_NAME.sub("_temp_xxxxx_", value))
    if isinstance(value, float):  # JSON's 1.0 and 1 differ on the wire (progress_state has both)
        return f"float:{value!r}"
    return value


def describe_binary(data: bytes) -> dict[str, Any]:
    event = int.from_bytes(data[:4], "big")
    if event == 4:
        length = int.from_bytes(data[4:8], "big")
        return {
            "event_type": 4,
            "metadata": json.loads(data[8 : 8 + length]),
            "magic": data[8 + length : 16 + length].hex(),
        }
    return {"event_type": event, "image_type": int.from_bytes(data[4:8], "big"), "magic": data[8:16].hex()}


def describe_recorded_binary(row: dict[str, Any]) -> dict[str, Any]:
    if row["event_type"] == 4:
        return {"event_type": 4, "metadata": row["metadata"], "magic": row["image_magic_hex"]}
    return {
        "event_type": row["event_type"],
        "image_type": int(row["first8_hex"][8:16], 16),
        "magic": row["image_magic_hex"],
    }


def live_frames(frames: list[Frame]) -> list[Any]:
    return [f.msg if f.kind == "text" else describe_binary(f.data) for f in frames]


def recorded_frames(case: str) -> tuple[dict[str, Any] | None, list[Any]]:
    """The recorded `POST /prompt` answer row and the frames the client received, in order."""
    answer = None
    frames = []
    for line in (REF / f"trace_{case}.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["dir"] == "http":
            answer = row
        elif row["dir"] == "in":
            frames.append(row["msg"] if row["kind"] == "text" else describe_recorded_binary(row))
    return answer, frames


# -- running a case ------------------------------------------------------------------------------------


@dataclass
class Run:
    answer: Answer
    client_id: str
    frames: list[Frame]
    history: dict[str, Any] = field(default_factory=dict)
    views: list[tuple[str, dict[str, Any], Answer]] = field(default_factory=list)

    @property
    def prompt_id(self) -> str | None:
        return self.answer.json().get("prompt_id") if self.answer.status == 200 else None


def run_case(comfy: ComfyProcess, case: str, *, feature_flags: bool = False, **body: Any) -> Run:
    client_id = uuid.uuid4().hex
    with Socket(comfy.ws_url(client_id)) as socket:
        frames = [socket.receive()]
        if feature_flags:
            socket.send_json({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
            frames.append(socket.receive())
        answer = post(comfy.url, "/prompt", {"prompt": workflow(case), "client_id": client_id, **body})
        run = Run(answer, client_id, frames)
        if answer.status == 200:
            run.frames += socket.until_done(run.prompt_id)
    if answer.status == 200:
        run.history = get(comfy.url, f"/history/{run.prompt_id}").json()
        for node_id, output in run.history[run.prompt_id]["outputs"].items():
            for item in output.get("images", []):
                query = f"/view?filename={item['filename']}&subfolder={item['subfolder']}&type={item['type']}"
                run.views.append((node_id, item, get(comfy.url, query)))
    return run


def assert_matches_recording(case: str, run: Run, *, exact_number: bool) -> None:
    recorded_answer, recorded = recorded_frames(case)
    assert recorded_answer is not None
    summary = ref(f"summary_{case}.json") if (REF / f"summary_{case}.json").exists() else {}
    ids = {run.client_id: "<client>", summary.get("client_id", "?"): "<client>"}
    if run.prompt_id:
        ids[run.prompt_id] = "<prompt_id>"
        ids[recorded_answer["body"]["prompt_id"]] = "<prompt_id>"

    live_body, recorded_body = run.answer.json(), recorded_answer["body"]
    if not exact_number and "number" in recorded_body:
        assert isinstance(live_body["number"], int)
        live_body["number"] = recorded_body["number"]
    assert run.answer.status == recorded_answer["status"]
    assert normalize(live_body, ids) == normalize(recorded_body, ids)
    assert normalize(live_frames(run.frames), ids) == normalize(recorded, ids)

    if run.prompt_id:
        (recorded_entry,) = ref(f"history_{case}.json").values()
        live_entry = run.history[run.prompt_id]
        if not exact_number:
            live_entry["prompt"][0] = recorded_entry["prompt"][0]
        # The outputs to execute: ComfyUI builds this list from a set, so its order varies between runs.
        for entry in (live_entry, recorded_entry):
            entry["prompt"][4] = sorted(entry["prompt"][4])
        assert normalize(live_entry, ids) == normalize(recorded_entry, ids)
        recorded_views = [
            _view_row(o["node"], o, o["status"], o["content_type"], o["magic_hex"])
            for o in ref(f"outputs_{case}.json")
        ]
        live_views = [
            _view_row(node, item, a.status, a.content_type, a.body[:8].hex()) for node, item, a in run.views
        ]
        assert live_views == recorded_views


def _view_row(
    node: str, item: dict[str, Any], status: int, content_type: str | None, magic: str
) -> tuple[Any, ...]:
    """An output file as `/view` served it (the random part of a preview's name left out)."""
    name = PREVIEW_NAME.sub("_temp_xxxxx_", item["filename"])
    return (node, name, item["subfolder"], item["type"], status, content_type, magic)
