"""The node classes the stand-in really runs, with Pillow, and the loaders that really open their files.

Implemented: EmptyImage, LoadImage, LoadImageMask, ImageInvert, ImageScale, SaveImage, PreviewImage,
SaveImageWebsocket, UpscaleModelLoader, ImageUpscaleWithModel (the slow node: one progress step per
512px tile, each taking `COMFYUI_STANDIN_STEP_DELAY`), and every built-in loader of
`loader_inputs.json`, which opens and checks each named file (outputs are opaque handles). Any other
class of object_info validates like ComfyUI's but fails when it runs, with NotImplementedError.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import yaml
from PIL import Image, ImageFile, ImageOps, ImageSequence, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from .catalog import Catalog
from .custom_nodes import run_pack_node
from .folders import Folders
from .images import ImageBatch, MaskBatch, empty_mask, solid_batch
from .upscalers import UpscaleModel, detect_upscaler
from .weightfiles import load_state_dict

Preview = tuple[str, Image.Image, int | None]  # (format, image, max size), as ComfyUI's progress previews


@dataclass
class NodeContext:
    """What a running node may use besides its inputs."""

    folders: Folders
    unique_id: str
    disable_metadata: bool
    step_delay: float
    state: dict[str, Any]  # kept between prompts while the node id keeps its class (ComfyUI's object cache)
    progress: Callable[
        [int, int, Preview | None], None
    ]  # raises InterruptProcessingException when interrupted
    wait: Callable[[float], None]  # a sleep that an interrupt cuts short


@dataclass(frozen=True)
class NodeOutput:
    result: tuple[Any, ...] = ()
    ui: dict[str, list[Any]] | None = None


@dataclass(frozen=True)
class NodeDef:
    """How to run one class. `validate` and `fingerprint` are ComfyUI's VALIDATE_INPUTS and IS_CHANGED."""

    run: Callable[..., NodeOutput]
    validate: Callable[..., bool | str] | None = None
    fingerprint: Callable[..., Any] | None = None
    validated_inputs: tuple[str, ...] = field(default=())


class NodeLibrary:
    """Which classes run, and each class's own input check (ComfyUI's VALIDATE_INPUTS)."""

    # Classes not run here whose own check is just "the named input file exists": (input, what it is).
    _FILE_CHECKS: ClassVar[dict[str, tuple[str, str]]] = {
        "LoadLatent": ("latent", "latent"),
        "LoadAudio": ("audio", "audio"),
        "LoadVideo": ("file", "video"),
    }

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._defs: dict[str, NodeDef] = {
            "EmptyImage": NodeDef(empty_image),
            "LoadImage": NodeDef(
                load_image,
                validate=input_file_check("image"),
                fingerprint=image_digest,
                validated_inputs=("image",),
            ),
            "LoadImageMask": NodeDef(
                load_image_mask,
                validate=input_file_check("image"),
                fingerprint=image_digest,
                validated_inputs=("image",),
            ),
            "ImageInvert": NodeDef(image_invert),
            "ImageScale": NodeDef(image_scale),
            "SaveImage": NodeDef(save_image),
            "PreviewImage": NodeDef(preview_image),
            "SaveImageWebsocket": NodeDef(save_image_websocket, fingerprint=lambda folders, **_: time.time()),
            "UpscaleModelLoader": NodeDef(upscale_model_loader),
            "ImageUpscaleWithModel": NodeDef(image_upscale_with_model),
        }

    def get(self, class_type: str) -> NodeDef | None:
        """The implementation, or None when the class exists in ComfyUI but not in the stand-in."""
        if class_type in self._defs and class_type in self._catalog:
            return self._defs[class_type]
        if class_type in self._catalog.custom.classes:
            pack_class = self._catalog.custom.classes[class_type]
            return NodeDef(lambda ctx, **inputs: NodeOutput(*run_pack_node(pack_class, ctx.state, inputs)))
        folder_inputs = self._catalog.folder_inputs(class_type)
        if folder_inputs and class_type != "TrainLoraNode":
            return NodeDef(_generic_loader(class_type, folder_inputs, self._catalog.return_types(class_type)))
        return None

    def own_check(self, class_type: str) -> tuple[Callable[..., bool | str] | None, tuple[str, ...]]:
        """The class's own check and the inputs it takes; ComfyUI skips min/max/combo checks for those."""
        known = self.get(class_type)
        if known is not None:
            return known.validate, known.validated_inputs
        if class_type in self._FILE_CHECKS:
            name, kind = self._FILE_CHECKS[class_type]
            return input_file_check(kind), (name,)
        if class_type == "TrainLoraNode":  # its own check (of images and resize_method) is not reproduced
            return None, ("images", "resize_method")
        return None, ()


def not_implemented(class_type: str) -> NotImplementedError:
    return NotImplementedError(
        f"The ComfyUI stand-in does not run '{class_type}'. It runs image nodes (EmptyImage, LoadImage, "
        "ImageInvert, ImageScale, SaveImage, PreviewImage, ImageUpscaleWithModel...) and loaders; run this "
        "workflow against a real ComfyUI (COMFYUI_PATH or COMFYUI_URL)."
    )


# -- images -------------------------------------------------------------------------------------------


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


# -- saving -------------------------------------------------------------------------------------------

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


# -- models -------------------------------------------------------------------------------------------


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


def _generic_loader(
    class_type: str, folder_inputs: dict[str, str], return_types: tuple[str, ...]
) -> Callable[..., NodeOutput]:
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


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 2**62
