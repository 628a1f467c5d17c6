"""Tiny custom node packs, written into a `custom_nodes` folder by a test, that load as real packs do in
ComfyUI and in the stand-in alike (plain Python values only, no torch): a loader of a weight from a model
folder the pack registers, a text output node, and packs that fail to import in each way ComfyUI logs."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

TINY_PACK = """
import hashlib
import folder_paths

folder_paths.add_model_folder_path("tiny_models", {folder!r})


class TinyWeightLoader:
    CATEGORY = "tiny"
    RETURN_TYPES = ("STRING",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {{"required": {{"weight_name": (folder_paths.get_filename_list("tiny_models"),)}}}}

    def load(self, weight_name):
        with open(folder_paths.get_full_path_or_raise("tiny_models", weight_name), "rb") as f:
            return (weight_name + " sha256=" + hashlib.sha256(f.read()).hexdigest(),)


class TinyShowText:
    CATEGORY = "tiny"
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "show"

    @classmethod
    def INPUT_TYPES(cls):
        return {{"required": {{"text": ("STRING", {{"forceInput": True}})}}}}

    def show(self, text):
        return {{"ui": {{"text": [text]}}}}


NODE_CLASS_MAPPINGS = {{"TinyWeightLoader": TinyWeightLoader, "TinyShowText": TinyShowText}}
NODE_DISPLAY_NAME_MAPPINGS = {{"TinyWeightLoader": "Load Tiny Weight"}}
WEB_DIRECTORY = "./web"
"""

BROKEN_PACK = "import tiny_dependency_that_is_not_installed\nNODE_CLASS_MAPPINGS = {}\n"
NO_MAPPINGS_PACK = "VALUE = 1\n"
DISABLED_PACK = """
class OffNode:
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "run"
    INPUT_TYPES = classmethod(lambda cls: {"required": {}})
NODE_CLASS_MAPPINGS = {"OffNode": OffNode}
"""


def write_packs(custom_nodes: Path, tiny_models: Path) -> None:
    """`tinypack/` (works), `brokenpack/` (ImportError), `nomappack.py` (no mappings), `offpack.disabled/`
    (skipped) and a README (not a pack) in `custom_nodes`; the tiny pack reads `tiny_models`."""
    tiny_models.mkdir(parents=True, exist_ok=True)
    for name, source in {
        "tinypack/__init__.py": TINY_PACK.format(folder=str(tiny_models)),
        "tinypack/web/tiny.js": "// the pack's front-end extension\n",
        "brokenpack/__init__.py": BROKEN_PACK,
        "nomappack.py": NO_MAPPINGS_PACK,
        "offpack.disabled/__init__.py": DISABLED_PACK,
        "README.md": "not a pack\n",
    }.items():
        path = custom_nodes / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))


def tiny_workflow(weight_name: str, *, loader_id: str = "1", show_id: str = "2") -> dict:
    return {
        loader_id: {"class_type": "TinyWeightLoader", "inputs": {"weight_name": weight_name}},
        show_id: {"class_type": "TinyShowText", "inputs": {"text": [loader_id, 0]}},
    }


def loaded_text(name: str, data: bytes) -> str:
    return f"{name} sha256={hashlib.sha256(data).hexdigest()}"
