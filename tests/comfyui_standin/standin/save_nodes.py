"""The nodes that save images: SaveImage (output), PreviewImage (temp) and SaveImageWebsocket (frames).

Files are named as ComfyUI names them (`save_image_path`), with the prompt in the PNG unless
`--disable-metadata`.
"""

from __future__ import annotations

import json
import os
import random
import time
from typing import Any

from PIL.PngImagePlugin import PngInfo

from .images import ImageBatch
from .node_api import NodeContext, NodeOutput

_PREVIEW_LETTERS = "abcdefghijklmnopqrstupvxyz"  # ComfyUI's alphabet for preview names, as it is


def save_image(
    ctx: NodeContext,
    images: ImageBatch,
    filename_prefix: str = "ComfyUI",
    prompt: Any = None,
    extra_pnginfo: Any = None,
) -> NodeOutput:
    results = _save_pngs(
        ctx, images, filename_prefix, ctx.folders.output_directory, "output", 4, prompt, extra_pnginfo
    )
    return NodeOutput(ui={"images": results})


def preview_image(
    ctx: NodeContext, images: ImageBatch, prompt: Any = None, extra_pnginfo: Any = None
) -> NodeOutput:
    suffix = ctx.state.setdefault("prefix_append", "_temp_" + "".join(random.choices(_PREVIEW_LETTERS, k=5)))
    folder = ctx.folders.temp_directory
    results = _save_pngs(ctx, images, "ComfyUI" + suffix, folder, "temp", 1, prompt, extra_pnginfo)
    return NodeOutput(ui={"images": results})


def save_image_websocket(ctx: NodeContext, images: ImageBatch) -> NodeOutput:
    for step, image in enumerate(images.images):
        ctx.progress(step, len(images), ("PNG", image, None))
    return NodeOutput()


def _save_pngs(
    ctx: NodeContext,
    images: ImageBatch,
    prefix: str,
    output_dir: str,
    kind: str,
    compress_level: int,
    prompt: Any,
    extra_pnginfo: Any,
) -> list[dict[str, str]]:
    folder, filename, counter, subfolder = save_image_path(prefix, output_dir, images.width, images.height)
    results = []
    for batch_number, image in enumerate(images.images):
        metadata = None
        if not ctx.disable_metadata:
            metadata = PngInfo()
            if prompt is not None:
                metadata.add_text("prompt", json.dumps(prompt))
            for key, value in (extra_pnginfo or {}).items():
                metadata.add_text(key, json.dumps(value))
        file = f"{filename.replace('%batch_num%', str(batch_number))}_{counter:05}_.png"
        image.save(os.path.join(folder, file), pnginfo=metadata, compress_level=compress_level)
        results.append({"filename": file, "subfolder": subfolder, "type": kind})
        counter += 1
    return results


def save_image_path(prefix: str, output_dir: str, width: int, height: int) -> tuple[str, str, int, str]:
    """ComfyUI's file naming: `<subfolder of prefix>/<name>_<counter:05>_.png`, counter after the highest."""
    if "%" in prefix:
        now = time.localtime()
        for var, value in (
            ("%width%", str(width)),
            ("%height%", str(height)),
            ("%year%", str(now.tm_year)),
            ("%month%", f"{now.tm_mon:02}"),
            ("%day%", f"{now.tm_mday:02}"),
            ("%hour%", f"{now.tm_hour:02}"),
            ("%minute%", f"{now.tm_min:02}"),
            ("%second%", f"{now.tm_sec:02}"),
        ):
            prefix = prefix.replace(var, value)
    subfolder = os.path.dirname(os.path.normpath(prefix))
    filename = os.path.basename(os.path.normpath(prefix))
    folder = os.path.join(output_dir, subfolder)
    common = os.path.commonpath((output_dir, os.path.abspath(folder)))
    if common != output_dir:
        raise Exception(  # ComfyUI raises a bare Exception here
            "**** ERROR: Saving image outside the output folder is not allowed."
            f"\n full_output_folder: {os.path.abspath(folder)}\n         output_dir: {output_dir}"
            f"\n         commonpath: {common}"
        )
    try:
        existing = os.listdir(folder)
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)
        return folder, filename, 1, subfolder
    name_len = len(os.path.basename(prefix))
    counters = []
    for name in existing:
        head = name[: name_len + 1]
        if head[:-1] == filename and head[-1:] == "_":
            try:
                counters.append(int(name[name_len + 1 :].split("_")[0]))
            except ValueError:
                counters.append(0)
    return folder, filename, max(counters, default=0) + 1, subfolder
