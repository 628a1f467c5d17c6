"""The custom node lock (`custom_nodes.json`) as a deployment uses it, between nodekit and the predictor.

- the weights manifest with the packs' weights, loaders, needs and folders merged in;
- ComfyUI's environment (`AUX_ANNOTATOR_CKPTS_PATH` and the like, pointed into the weights directory) and
  an extra model-paths config for pack folders kept under other names;
- at setup, one log line comparing what is installed with the lock, naming packs ComfyUI failed to import;
- after weights are fetched, links for weights a pack opens at a fixed place;
- for a class ComfyUI lacks, nodekit's sentence: its pack, that pack's repository, what to add.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from pathlib import Path

from comfyrun.settings import RuntimeSettings
from nodekit import (
    Lock,
    NodeSettings,
    PackIndex,
    link_pack_weights,
    load_lock,
    log_status,
    manifest_with_lock,
    missing_class_hint,
    write_pack_model_paths,
)
from weightkit.manifest import Manifest
from weightkit.modelpaths import read_extra_model_paths

__all__ = ["CustomNodes"]


class CustomNodes:
    """The packs of one deployment; reads the lock when first asked, writes only when told to."""

    def __init__(self, settings: NodeSettings, comfyui: RuntimeSettings) -> None:
        self.settings = settings
        self.comfyui = comfyui

    @cached_property
    def lock(self) -> Lock:
        """Raises `LockError` naming the file, pack and field."""
        return load_lock(self.settings.lock_path)

    @cached_property
    def index(self) -> PackIndex:
        return PackIndex(self.lock)

    def manifest(self) -> Manifest:
        """The weights manifest (built-in and `WEIGHTS_MANIFEST_EXTRA`) with the packs' knowledge merged."""
        return manifest_with_lock(self.comfyui.weights, self.lock)

    def comfyui_env(self) -> dict[str, str]:
        return self.lock.comfyui_env(self.comfyui.weights.weights_dir)

    @property
    def model_paths_file(self) -> Path:
        return self.comfyui.model_paths_file.with_name("pack_model_paths.yaml")

    def model_paths_files(self) -> list[Path]:
        """The config `write_model_paths` writes, when the lock has pack folders kept under other names."""
        return [self.model_paths_file] if self.lock.folder_paths() else []

    def write_model_paths(self) -> None:
        write_pack_model_paths(self.model_paths_file, self.lock, self.comfyui.weights.weights_dir)

    def log_status(self, import_failures: Mapping[str, str]) -> None:
        """The setup line: each pack of the installed selection, ok, missing, at another commit, or failed
        to import (with ComfyUI's message)."""
        selection = self.lock.selection(self.settings.install, setting="CUSTOM_NODES_INSTALL")
        log_status(self.lock, selection, self.custom_nodes_dir(), import_failures=import_failures)

    def link_weights(self) -> None:
        link_pack_weights(self.lock, self.comfyui.weights.weights_dir, self.comfyui.comfyui_path)

    def hint(self, class_type: str, import_failures: Mapping[str, str]) -> str | None:
        """nodekit's sentence on a class ComfyUI lacks: its pack, or that it is one of ComfyUI's own; None
        for a class no known pack provides, left to the nearest class name the running ComfyUI has."""
        return missing_class_hint(class_type, self.index, import_failures)

    def custom_nodes_dir(self) -> Path:
        """Where the packs are: `<COMFYUI_PATH>/custom_nodes`, or a `custom_nodes` folder the user's
        `EXTRA_MODEL_PATHS_CONFIG` gives ComfyUI, the first that holds a pack of the lock."""
        candidates = [self.comfyui.comfyui_path / "custom_nodes"]
        extra = self.comfyui.weights.extra_model_paths
        if extra is not None:
            candidates += [
                path for folder, path, _ in read_extra_model_paths(extra) if folder == "custom_nodes"
            ]
        names = {pack.name for pack in self.lock.packs}
        for candidate in candidates:
            if any((candidate / name).is_dir() for name in names):
                return candidate
        return candidates[0]
