"""The two tiny custom node packs the image test installs with cog.yaml's nodekit line, and their lock.

- `image-test-tints` registers a model folder, `tints`, and loads a weight from it (`TintLoader`: a
  `.tint` file, a colour as JSON); the test bakes that weight into the image with its weight kit;
- `image-test-colour-names` requires `webcolors` from PyPI (in its `requirements.txt`, as real packs
  have theirs) and names the loaded colour with it (`ColourName`), shown by `ShowColourName`.

Both are plain Python (no torch), which the ComfyUI stand-in runs as ComfyUI would. `lock(commits)` is the
test's `custom_nodes.json`: the packs at their commits in the mirror (`mirrors.make_pack_mirrors`), both in
the default selection, with the loader input and folder the local check must know.
"""

from __future__ import annotations

import hashlib
import json
import re

from nodekit import parse_lock

__all__ = [
    "COLOUR_NAMES",
    "OWNER",
    "PACK_FILES",
    "REQUIREMENT",
    "TINT",
    "TINTS",
    "TINT_FOLDER",
    "TINT_NAME",
    "assert_packs_loaded",
    "expected_text",
    "lock_text",
    "workflow",
]

OWNER = "image-test"
TINTS = "image-test-tints"
COLOUR_NAMES = "image-test-colour-names"
REQUIREMENT = ("webcolors", "25.10.0")  # 15 kB, pure Python, no dependencies; not in the base image
TINT_FOLDER = "tints"
TINT_NAME = "teal.tint"
TINT = b'{"rgb": [0, 128, 128]}\n'
CUSTOM_NODES = "/src/ComfyUI/custom_nodes"  # where cog.yaml's nodekit line installs them

_TINTS_INIT = '''\
"""A loader of `.tint` weights from the model folder this pack registers."""
import hashlib
import json
import re
import os

import folder_paths

folder_paths.add_model_folder_path("tints", os.path.join(folder_paths.models_dir, "tints"))


class TintLoader:
    RETURN_TYPES = ("TINT",)
    FUNCTION = "load"
    CATEGORY = "image-test"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"tint_name": (folder_paths.get_filename_list("tints"),)}}

    def load(self, tint_name):
        with open(folder_paths.get_full_path_or_raise("tints", tint_name), "rb") as handle:
            data = handle.read()
        tint = {"name": tint_name, "rgb": json.loads(data)["rgb"], "sha256": hashlib.sha256(data).hexdigest()}
        return (tint,)


NODE_CLASS_MAPPINGS = {"TintLoader": TintLoader}
'''

_COLOUR_NAMES_INIT = '''\
"""A colour's CSS name, from the `webcolors` distribution this pack requires."""
from importlib.metadata import version

import webcolors


class ColourName:
    RETURN_TYPES = ("STRING",)
    FUNCTION = "name"
    CATEGORY = "image-test"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"tint": ("TINT",)}}

    def name(self, tint):
        colour = webcolors.rgb_to_name(tuple(tint["rgb"]))
        return (f"{colour} from {tint['name']} {tint['sha256']} (webcolors {version('webcolors')})",)


class ShowColourName:
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "show"
    CATEGORY = "image-test"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"forceInput": True})}}

    def show(self, text):
        return {"ui": {"text": [text]}}


NODE_CLASS_MAPPINGS = {"ColourName": ColourName, "ShowColourName": ShowColourName}
'''

PACK_FILES: dict[str, dict[str, str]] = {
    TINTS: {"__init__.py": _TINTS_INIT},
    COLOUR_NAMES: {"__init__.py": _COLOUR_NAMES_INIT, "requirements.txt": "{}=={}\n".format(*REQUIREMENT)},
}


def lock_text(commits: dict[str, str]) -> str:
    """The test lock in nodekit's canonical form (validated here, before any build)."""
    packs = [
        {
            "name": TINTS,
            "repository": f"https://github.com/{OWNER}/{TINTS}.git",
            "commit": commits[TINTS],
            "install": True,
            "classes": ["TintLoader"],
            "loaders": {"TintLoader": {"tint_name": TINT_FOLDER}},
            "folders": {TINT_FOLDER: {"extensions": [".tint"]}},
            "notes": ["the image test's pack: a loader of a weight in a folder it registers"],
        },
        {
            "name": COLOUR_NAMES,
            "repository": f"https://github.com/{OWNER}/{COLOUR_NAMES}.git",
            "commit": commits[COLOUR_NAMES],
            "install": True,
            "classes": ["ColourName", "ShowColourName"],
            "notes": ["the image test's pack with a requirement (webcolors, from PyPI)"],
        },
    ]
    document = {"schema_version": 1, "packs": packs}
    return parse_lock(json.loads(json.dumps(document)), source="the image test's lock").dumps()


def workflow() -> dict:
    return {
        "1": {"class_type": "TintLoader", "inputs": {"tint_name": TINT_NAME}},
        "2": {"class_type": "ColourName", "inputs": {"tint": ["1", 0]}},
        "3": {"class_type": "ShowColourName", "inputs": {"text": ["2", 0]}},
    }


def expected_text() -> str:
    """What `workflow()` shows: the name webcolors gives the baked tint, which the loader read whole."""
    return f"teal from {TINT_NAME} {hashlib.sha256(TINT).hexdigest()} (webcolors {REQUIREMENT[1]})"


def assert_packs_loaded(logs: str, commits: dict[str, str], custom_nodes: str = CUSTOM_NODES) -> None:
    """A container's log shows both packs installed at their lock commits (the predictor's setup line) and
    imported by ComfyUI from `custom_nodes` (its import times, with no IMPORT FAILED)."""
    for name, commit in commits.items():
        assert f"{name} {commit[:7]} ok" in logs, logs[-4000:]
        # coglet wraps each line in JSON: the path is followed by a quote, or ends a plain line.
        path = re.escape(f"{custom_nodes}/{name}")
        imported = re.search(rf"[\d.]+ seconds: {path}(\"|$)", logs, re.M)
        assert imported, f"ComfyUI did not import {name} from {custom_nodes}:\n{logs[-4000:]}"
    assert "custom nodes: 2 of 2 ok" in logs and "IMPORT FAILED" not in logs, logs[-4000:]
