"""The model nodes: UpscaleModelLoader, ImageUpscaleWithModel (the slow node), and the other loaders.

Every built-in loader of `loader_inputs.json` opens and checks each named file as the safetensors /
torch readers do; its outputs are opaque handles (`LoadedModel`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml
from PIL import Image

from .images import ImageBatch
from .node_api import NodeContext, NodeOutput
from .upscalers import UpscaleModel, detect_upscaler
from .weightfiles import load_state_dict


def upscale_model_loader(ctx: NodeContext, model_name: str) -> NodeOutput:
    path = ctx.folders.full_path_or_raise("upscale_models", model_name)
    return NodeOutput((detect_upscaler(load_state_dict(path), path),))


def image_upscale_with_model(ctx: NodeContext, upscale_model: UpscaleModel, image: ImageBatch) -> NodeOutput:
    """Resize by the model's scale, one progress step per 512px tile (32px overlap) like ComfyUI's tiling."""
    tiles = _tile_count(image.width, tile=512, overlap=32) * _tile_count(image.height, tile=512, overlap=32)
    steps = len(image) * tiles
    scale = upscale_model.scale
    done = 0
    upscaled = []
    for picture in image.images:
        for _ in range(tiles):
            ctx.wait(ctx.step_delay)
            done += 1
            ctx.progress(done, steps, None)
        upscaled.append(
            picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.BICUBIC)
        )
    return NodeOutput((ImageBatch(tuple(upscaled)),))


def _tile_count(size: int, *, tile: int, overlap: int) -> int:
    return 1 if size <= tile else math.ceil((size - overlap) / (tile - overlap))


@dataclass(frozen=True)
class LoadedModel:
    """The opaque output of a loader the stand-in only checks: which class loaded which files."""

    kind: str
    class_type: str
    files: tuple[str, ...]

    def __str__(self) -> str:
        return f"<{self.kind} loaded by {self.class_type} from {', '.join(self.files) or 'no file'}>"


def generic_loader(
    class_type: str, folder_inputs: dict[str, str], return_types: tuple[str, ...]
) -> Callable[..., NodeOutput]:
    """How a loader the stand-in only checks runs: open each named file, hand back opaque handles."""

    def run(ctx: NodeContext, **inputs: Any) -> NodeOutput:
        files = []
        for name, folder in folder_inputs.items():
            value = inputs.get(name)
            if value is None or (class_type == "VAELoader" and value == "pixel_space"):
                continue
            if class_type == "VAELoader" and value in ("taesd", "taesdxl", "taesd3", "taef1"):
                approx = ctx.folders.filename_list("vae_approx")
                for part in ("encoder", "decoder"):
                    match = next((a for a in approx if a.startswith(f"{value}_{part}.")), None)
                    if match is None:
                        raise StopIteration
                    files.append(_check_model_file(ctx.folders.full_path_or_raise("vae_approx", match)))
                continue
            files.append(_check_model_file(ctx.folders.full_path_or_raise(folder, value)))
        return NodeOutput(tuple(LoadedModel(kind, class_type, tuple(files)) for kind in return_types))

    return run


def _check_model_file(path: str) -> str:
    if path.lower().endswith(".yaml"):
        with open(path, encoding="utf-8") as f:
            yaml.safe_load(f)
    else:
        load_state_dict(path)
    return path
