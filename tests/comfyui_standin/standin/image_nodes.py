"""The image nodes: EmptyImage, LoadImage, LoadImageMask, ImageInvert and ImageScale, with Pillow.

LoadImage and LoadImageMask also bring their own input check (the file exists) and fingerprint (its
digest), as ComfyUI's VALIDATE_INPUTS and IS_CHANGED.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any

from PIL import Image, ImageFile, ImageOps, ImageSequence, UnidentifiedImageError

from .folders import Folders
from .images import ImageBatch, MaskBatch, empty_mask, solid_batch
from .node_api import NodeContext, NodeOutput


def empty_image(ctx: NodeContext, width: int, height: int, batch_size: int = 1, color: int = 0) -> NodeOutput:
    requested = batch_size * height * width * 4  # ComfyUI first allocates one float32 channel
    if requested > _physical_memory():
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
            f"you tried to allocate {requested} bytes. Error code 12 (Cannot allocate memory)"
        )
    rgb = ((color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF)
    return NodeOutput((solid_batch(width, height, batch_size, rgb),))


def image_invert(ctx: NodeContext, image: ImageBatch) -> NodeOutput:
    return NodeOutput((ImageBatch(tuple(ImageOps.invert(i) for i in image.images)),))


_RESAMPLING = {
    "nearest-exact": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "area": Image.Resampling.BOX,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def image_scale(
    ctx: NodeContext, image: ImageBatch, upscale_method: str, width: int, height: int, crop: str
) -> NodeOutput:
    if width == 0 and height == 0:
        return NodeOutput((image,))
    if width == 0:
        width = max(1, round(image.width * height / image.height))
    elif height == 0:
        height = max(1, round(image.height * width / image.width))
    box = (0, 0, image.width, image.height)
    if crop == "center":
        old_aspect, new_aspect = image.width / image.height, width / height
        x = y = 0
        if old_aspect > new_aspect:
            x = round((image.width - image.width * (new_aspect / old_aspect)) / 2)
        elif old_aspect < new_aspect:
            y = round((image.height - image.height * (old_aspect / new_aspect)) / 2)
        box = (x, y, image.width - x, image.height - y)
    method = _RESAMPLING[upscale_method]
    return NodeOutput((ImageBatch(tuple(i.resize((width, height), method, box=box) for i in image.images)),))


def load_image(ctx: NodeContext, image: str) -> NodeOutput:
    picture = _open_image(ctx.folders.annotated_path(image))
    frames: list[Image.Image] = []
    masks: list[Image.Image] = []
    for frame in ImageSequence.Iterator(picture):
        frame = _pillow(ImageOps.exif_transpose, frame)
        if frame.mode == "I":
            frame = frame.point(lambda v: v * (1 / 255))
        rgb = frame.convert("RGB")
        if frames and rgb.size != frames[0].size:
            continue
        if "A" in frame.getbands():
            mask = ImageOps.invert(frame.getchannel("A"))
        elif frame.mode == "P" and "transparency" in frame.info:
            mask = ImageOps.invert(frame.convert("RGBA").getchannel("A"))
        else:
            mask = empty_mask()
        frames.append(rgb)
        masks.append(mask)
    if len(frames) > 1 and picture.format != "MPO":
        return NodeOutput((ImageBatch(tuple(frames)), MaskBatch(tuple(masks))))
    return NodeOutput((ImageBatch((frames[0],)), MaskBatch((masks[0],))))


def load_image_mask(ctx: NodeContext, image: str, channel: str) -> NodeOutput:
    picture = _pillow(ImageOps.exif_transpose, _open_image(ctx.folders.annotated_path(image)))
    if picture.getbands() != ("R", "G", "B", "A"):
        if picture.mode == "I":
            picture = picture.point(lambda v: v * (1 / 255))
        picture = picture.convert("RGBA")
    band = channel[0].upper()
    if band in picture.getbands():
        mask = picture.getchannel(band)
        if band == "A":
            mask = ImageOps.invert(mask)
    else:
        mask = empty_mask()
    return NodeOutput((MaskBatch((mask,)),))


def input_file_check(kind: str) -> Callable[..., bool | str]:
    """ComfyUI's check of a file input: True, or "Invalid <kind> file: <name>"."""

    def check(folders: Folders, **inputs: str) -> bool | str:
        (name,) = inputs.values()
        if not folders.annotated_exists(name):
            return f"Invalid {kind} file: {name}"
        return True

    return check


def image_digest(folders: Folders, image: str, **_: Any) -> str:
    with open(folders.annotated_path(image), "rb") as f:
        return hashlib.sha256(f.read()).digest().hex()


def _open_image(path: str) -> Image.Image:
    return _pillow(Image.open, path)


def _pillow(fn: Callable[[Any], Any], arg: Any) -> Any:
    """Retry once with truncated images allowed, as ComfyUI's node_helpers.pillow does."""
    try:
        return fn(arg)
    except (OSError, UnidentifiedImageError, ValueError):
        previous = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = True
        try:
            return fn(arg)
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = previous


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 2**62
