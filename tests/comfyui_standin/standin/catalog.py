"""The node classes ComfyUI v0.3.64 has, taken from the recording, with file lists read from disk.

`object_info.json` (recorded from a real server) says for every class its inputs (types, min/max,
defaults, combo options), outputs and whether it is an output node; validation and `/object_info` are
driven by it. Combo options that ComfyUI fills from folders are replaced on each request by a fresh
listing: model-folder inputs (`loader_inputs.json` says which folder), the image inputs of LoadImage
and LoadImageMask (the input directory), VAELoader's virtual names. Classes of custom node packs
(`custom_nodes.py`) come after, their info built from the class, `INPUT_TYPES()` asked on each request.
"""

from __future__ import annotations

import copy
import json
import mimetypes
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .custom_nodes import CustomNodes, node_info
from .folders import Folders

REFERENCE_DIR = Path(__file__).resolve().parents[2] / "reference" / "comfyui"

_TAESD_NAMES = ("taesd", "taesdxl", "taesd3", "taef1")
_CONTENT_TYPES = {"webp": "image", "fbx": "model"}


@dataclass(frozen=True, kw_only=True)
class CatalogOptions:
    disable_api_nodes: bool = False
    disable_all_custom_nodes: bool = False
    whitelist_custom_nodes: tuple[str, ...] = ()


class Catalog:
    """The recorded node classes, filtered like ComfyUI's node loading flags filter them."""

    def __init__(
        self, object_info: dict[str, Any], loader_inputs: dict[str, dict[str, str]], folders: Folders
    ):
        self._info = object_info
        self._loader_inputs = loader_inputs
        self._folders = folders
        self.custom = CustomNodes()  # the packs' classes, set once they are loaded

    @classmethod
    def from_reference(
        cls,
        folders: Folders,
        options: CatalogOptions,
        reference_dir: Path = REFERENCE_DIR,
    ) -> Catalog:
        """Read `object_info.json` and `loader_inputs.json` from the recording (raises OSError if absent)."""
        info = json.loads((reference_dir / "object_info.json").read_text())
        loaders = json.loads((reference_dir / "loader_inputs.json").read_text())["mapping"]

        def kept(node: dict[str, Any]) -> bool:
            module = node["python_module"]
            if options.disable_api_nodes and module.startswith("comfy_api_nodes"):
                return False
            if options.disable_all_custom_nodes and module.startswith("custom_nodes."):
                return module.removeprefix("custom_nodes.") + ".py" in options.whitelist_custom_nodes
            return True

        info = {name: node for name, node in info.items() if kept(node)}
        return cls(info, {k: v for k, v in loaders.items() if k in info}, folders)

    # -- what a class is ------------------------------------------------------------------------------

    def __contains__(self, class_type: object) -> bool:
        return class_type in self._info or class_type in self.custom.classes

    def class_types(self) -> list[str]:
        return [*self._info, *self.custom.classes]

    def is_output(self, class_type: str) -> bool:
        return self._static(class_type)["output_node"] is True

    def return_types(self, class_type: str) -> tuple[str, ...]:
        return tuple(self._static(class_type)["output"])

    def is_v3(self, class_type: str) -> bool:
        """Nodes written against comfy_api's io.ComfyNode (they always report these three flags)."""
        return {"deprecated", "experimental", "api_node"} <= self._static(class_type).keys()

    def hidden_inputs(self, class_type: str) -> dict[str, str]:
        return dict(self._static(class_type)["input"].get("hidden", {}))

    def _static(self, class_type: str) -> dict[str, Any]:
        if class_type in self._info:
            return self._info[class_type]
        display = self.custom.display_names.get(class_type)
        return node_info(class_type, self.custom.classes[class_type], display)

    def folder_inputs(self, class_type: str) -> dict[str, str]:
        """`{input: model folder}` for a loader class (empty for anything else)."""
        return dict(self._loader_inputs.get(class_type, {}))

    # -- inputs and node info, with fresh file lists --------------------------------------------------

    def inputs(self, class_type: str) -> dict[str, dict[str, Any]]:
        """The class's `required` / `optional` / `hidden` input specs, combos filled from disk now."""
        return self.node_info(class_type)["input"]

    def input_order(self, class_type: str) -> list[str]:
        order = self._static(class_type).get("input_order", {})
        return [*order.get("required", []), *order.get("optional", [])]

    def node_info(self, class_type: str) -> dict[str, Any]:
        """`/object_info/{class}`'s entry for the class (a copy where file lists were refreshed)."""
        node = self._static(class_type)
        fresh = self._fresh_options(class_type)
        if not fresh:
            return node
        node = copy.deepcopy(node)
        for name, options in fresh.items():
            for section in ("required", "optional"):
                spec = node["input"].get(section, {}).get(name)
                if spec is None:
                    continue
                if spec[0] == "COMBO":
                    spec[1]["options"] = options
                else:
                    spec[0] = options
        return node

    def _fresh_options(self, class_type: str) -> dict[str, list[str]]:
        if class_type in ("LoadImage", "LoadImageMask"):
            names = sorted(
                f
                for f in _listdir(self._folders.input_directory)
                if os.path.isfile(os.path.join(self._folders.input_directory, f))
            )
            return {"image": _images_only(names) if class_type == "LoadImage" else names}
        fresh = {}
        for name, folder in self._loader_inputs.get(class_type, {}).items():
            options = self._folders.filename_list(folder)
            if class_type == "VAELoader":
                options += [*_taesd_names(self._folders.filename_list("vae_approx")), "pixel_space"]
            elif class_type == "TrainLoraNode":
                options += ["[None]"]
            fresh[name] = options
        return fresh


def _listdir(directory: str) -> list[str]:
    try:
        return os.listdir(directory)
    except FileNotFoundError:
        return []


def _images_only(names: list[str]) -> list[str]:
    kept = []
    for name in names:
        extension = name.split(".")[-1]
        content_type = _CONTENT_TYPES.get(extension)
        if content_type is None:
            mime, _ = mimetypes.guess_type(name, strict=False)
            if not mime:
                continue
            content_type = mime.split("/")[0]
        if content_type == "image":
            kept.append(name)
    return kept


def _taesd_names(approx: list[str]) -> list[str]:
    """VAELoader offers a TAESD name when both its encoder and decoder are in vae_approx."""
    return [
        name
        for name in _TAESD_NAMES
        if any(a.startswith(f"{name}_encoder.") for a in approx)
        and any(a.startswith(f"{name}_decoder.") for a in approx)
    ]
