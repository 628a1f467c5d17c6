"""A finished prompt's outputs, from its `/history/<id>` entry, in a stable order.

A history entry maps each output node to what it produced: lists of files (`images`, `gifs`, `video`,
`audio`, … as `{filename, subfolder, type}`) and of text. Files of type `temp` (previews) are left out
unless asked for. Nodes come in natural order of their ids ("2" before "10", "4:2" after "4"), each
node's items in ComfyUI's order. A file is taken from ComfyUI's directory when ComfyUI runs on this
machine, otherwise fetched through `/view`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from comfyrun.errors import ComfyRunError
from comfyrun.http import ComfyHTTP

__all__ = ["Output", "collect_outputs", "output_items"]


@dataclass(frozen=True)
class Output:
    """One thing a node produced: a file at `path`, or a `text`."""

    node_id: str
    kind: str  # the history key: images, gifs, video, audio, text, …
    filename: str | None = None
    subfolder: str = ""
    type: str | None = None  # output, temp or input, for files
    path: Path | None = None
    text: str | None = None


def _natural(node_id: str) -> tuple[Any, ...]:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", node_id))


def output_items(entry: Mapping[str, Any], *, include_temp: bool = False) -> list[Output]:
    """The entry's outputs without locating files (`path` is None), in the stable order."""
    items: list[Output] = []
    outputs = entry.get("outputs") or {}
    for node_id in sorted(outputs, key=_natural):
        produced = outputs[node_id]
        if not isinstance(produced, Mapping):
            continue
        for kind, values in produced.items():
            for value in values if isinstance(values, list) else ():
                if isinstance(value, str) and kind == "text":
                    items.append(Output(node_id=node_id, kind=kind, text=value))
                elif isinstance(value, Mapping) and isinstance(value.get("filename"), str):
                    file_type = str(value.get("type") or "output")
                    if file_type == "temp" and not include_temp:
                        continue
                    items.append(
                        Output(
                            node_id=node_id,
                            kind=kind,
                            filename=value["filename"],
                            subfolder=str(value.get("subfolder") or ""),
                            type=file_type,
                        )
                    )
    return items


def _relative(item: Output) -> PurePosixPath:
    """`subfolder/filename`, refusing anything that would leave ComfyUI's directory."""
    relative = PurePosixPath(item.subfolder) / str(item.filename)
    if relative.is_absolute() or ".." in relative.parts or "\\" in str(relative):
        raise ComfyRunError(f"ComfyUI reported an output path outside its directories: {relative}")
    return relative


def collect_outputs(
    entry: Mapping[str, Any],
    *,
    include_temp: bool = False,
    local_dirs: Mapping[str, Path] | None = None,
    http: ComfyHTTP | None = None,
    download_dir: Path | None = None,
) -> list[Output]:
    """Every output with its file located: in `local_dirs[type]` when given, else downloaded into
    `download_dir/<type>/` through `http`. Raises `ComfyRunError` for a listed file that is not there.
    """
    located = []
    for item in output_items(entry, include_temp=include_temp):
        if item.filename is None:
            located.append(item)
            continue
        relative = _relative(item)
        if local_dirs is not None:
            root = local_dirs.get(str(item.type))
            path = root / relative if root is not None else None
            if path is None or not path.is_file():
                raise ComfyRunError(
                    f"ComfyUI listed output {relative} ({item.type}) of node {item.node_id}, but it is not "
                    f"in {root}"
                )
        elif http is not None and download_dir is not None:
            path = http.download(
                filename=str(item.filename),
                subfolder=item.subfolder,
                type=str(item.type),
                destination=download_dir / str(item.type) / relative,
            )
        else:
            raise ValueError("collect_outputs needs local_dirs, or http and download_dir")
        located.append(replace(item, path=path))
    return located
