"""Which input of which node class names a weight file, and in which model folder: one map for all.

The built-in part (`data/loaders.json`) lists ComfyUI's own loader nodes; a manifest's `loaders` (and
custom node packs' loaders) extend it and override it input by input. Extraction of a workflow's weights,
the search paths written for ComfyUI, and the predictor's handling of URL inputs all read the same merged
map, kept on the `Manifest`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources

from weightkit.folders import canonical_folder

__all__ = ["LoaderMap", "builtin_loader_map"]


@dataclass(frozen=True)
class LoaderMap:
    """`folders`: class_type → input name → model folder. `not_files`: values of an input that name no
    file (exact values, or a prefix ending in `*`), such as `pixel_space` or `taesd*`."""

    folders: Mapping[str, Mapping[str, str]]
    not_files: Mapping[str, Mapping[str, tuple[str, ...]]]

    def folder(self, class_type: str, input_name: str) -> str | None:
        """The model folder `class_type`'s input names a file in, or None if it is not a weight input."""
        folder = self.folders.get(class_type, {}).get(input_name)
        return canonical_folder(folder) if folder else None

    def merged(self, custom: Mapping[str, Mapping[str, str]]) -> LoaderMap:
        """This map with `custom` over it: its inputs replace the same inputs here, others are added."""
        if not custom:
            return self
        folders = {class_type: dict(inputs) for class_type, inputs in self.folders.items()}
        for class_type, inputs in custom.items():
            folders.setdefault(class_type, {}).update(
                {name: canonical_folder(folder) for name, folder in inputs.items()}
            )
        return LoaderMap(folders=folders, not_files=self.not_files)

    def all_folders(self) -> set[str]:
        return {canonical_folder(folder) for inputs in self.folders.values() for folder in inputs.values()}


@cache
def builtin_loader_map() -> LoaderMap:
    """ComfyUI's own loader nodes (0.3.64), read once from `weightkit/data/loaders.json`."""
    raw = resources.files("weightkit").joinpath("data/loaders.json").read_text(encoding="utf-8")
    data = json.loads(raw)
    return LoaderMap(
        folders={class_type: dict(inputs) for class_type, inputs in data["loaders"].items()},
        not_files={
            class_type: {name: tuple(patterns) for name, patterns in inputs.items()}
            for class_type, inputs in data["not_files"].items()
        },
    )
