"""The node classes the stand-in really runs, with Pillow, and the loaders that really open their files.

Implemented: EmptyImage, LoadImage, LoadImageMask, ImageInvert, ImageScale, SaveImage, PreviewImage,
SaveImageWebsocket, UpscaleModelLoader, ImageUpscaleWithModel (the slow node: one progress step per
512px tile, each taking `COMFYUI_STANDIN_STEP_DELAY`), and every built-in loader of
`loader_inputs.json`, which opens and checks each named file (outputs are opaque handles). Any other
class of object_info validates like ComfyUI's but fails when it runs, with NotImplementedError.

The families live in `image_nodes`, `save_nodes` and `model_nodes`; `node_api` is what each is given.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .catalog import Catalog
from .custom_nodes import run_pack_node
from .image_nodes import (
    empty_image,
    image_digest,
    image_invert,
    image_scale,
    input_file_check,
    load_image,
    load_image_mask,
)
from .model_nodes import generic_loader, image_upscale_with_model, upscale_model_loader
from .node_api import NodeOutput
from .save_nodes import preview_image, save_image, save_image_websocket


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
            return NodeDef(generic_loader(class_type, folder_inputs, self._catalog.return_types(class_type)))
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
