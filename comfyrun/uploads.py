"""A prediction's input files sent to an attached ComfyUI (`COMFYUI_URL`), out of later predictions' reach.

ComfyUI's HTTP API can put a file into its input folder (`POST /upload/image`) but has no route that
removes one, so what a prediction uploads stays on that server. Each upload therefore goes into a
subfolder of its own, `predictions/<random 128-bit hex>/`, and the workflow is rewritten to name the files
there: a later prediction that asks for `input.png` cannot get the previous user's, and neither
`LoadImage`'s list nor `/internal/files` shows subfolders. The operator of the attached ComfyUI empties
`<input>/predictions/` when they like (files there are never read again).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from comfyrun.http import ComfyHTTP

__all__ = ["UPLOADS_FOLDER", "upload_folder"]

UPLOADS_FOLDER = "predictions"
_ANNOTATION = " [input]"  # ComfyUI's `name [input]`: the file in the input folder


def upload_folder(
    http: ComfyHTTP, folder: Path, workflow: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """Upload every file under `folder` into a new subfolder of ComfyUI's input folder; `workflow` with
    each input whose value names one of them (`pics/cat.png`, or `pics/cat.png [input]`) pointed at its
    upload, and the names uploaded (relative to `folder`). Raises ComfyUI's HTTP errors."""
    run = f"{UPLOADS_FOLDER}/{uuid.uuid4().hex}"
    placed: dict[str, str] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.relative_to(folder).as_posix()
        parent = path.parent.relative_to(folder).as_posix()
        http.upload_input(path, subfolder=run if parent == "." else f"{run}/{parent}")
        placed[name] = f"{run}/{name}"
    return _pointed_at(workflow, placed), list(placed)


def _pointed_at(workflow: Mapping[str, Any], placed: Mapping[str, str]) -> dict[str, Any]:
    """A copy of `workflow` whose string inputs equal to a key of `placed` become its value."""
    out: dict[str, Any] = {}
    for node_id, node in workflow.items():
        inputs = node.get("inputs") if isinstance(node, Mapping) else None
        if not isinstance(inputs, Mapping):
            out[node_id] = node
            continue
        out[node_id] = {**node, "inputs": {key: _placed(value, placed) for key, value in inputs.items()}}
    return out


def _placed(value: Any, placed: Mapping[str, str]) -> Any:
    if not isinstance(value, str):
        return value
    if value in placed:
        return placed[value]
    base = value.removesuffix(_ANNOTATION)
    return placed[base] + _ANNOTATION if base != value and base in placed else value
