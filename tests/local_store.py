"""A minimal weight store for the client's tests, with the interface of `weightkit.store.WeightStore`.

It finds a workflow's weights with weightkit's extraction, and repairs a file the way the real store
does, with a local copy standing in for the download: quarantine the file ComfyUI would load, copy the
good one into place through a temporary name, and verify its sha256.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from weightkit.errors import WeightkitError
from weightkit.extract import WeightRef, required_weights
from weightkit.modelpaths import weight_folders, write_extra_model_paths
from weightkit.verified import sha256_file


class RepairFailed(WeightkitError, RuntimeError):
    pass


class LocalStore:
    """Weights in `weights_dir/<folder>/<name>`; good copies of them in `sources/<name>`."""

    def __init__(self, weights_dir: Path, sources: Path) -> None:
        self.weights_dir = weights_dir
        self.sources = sources
        self.repaired: list[tuple[str, str]] = []

    def required(self, workflow: dict[str, Any]) -> list[WeightRef]:
        return required_weights(workflow)

    def check(self, workflow: dict[str, Any]) -> list[WeightRef]:
        missing = [r for r in self.required(workflow) if not (self.weights_dir / r.folder / r.name).is_file()]
        if missing:
            raise RepairFailed("missing weights: " + ", ".join(f"{r.folder}/{r.name}" for r in missing))
        return []

    def repair(self, name: str, folder: str) -> Path:
        target = self.weights_dir / folder / name
        source = self.sources / name
        if not source.is_file():
            raise RepairFailed(f"no source for {folder}/{name}")
        quarantine = self.weights_dir / ".quarantine" / folder
        quarantine.mkdir(parents=True, exist_ok=True)
        if target.exists():
            os.replace(target, quarantine / name)
        partial = target.with_name(f".{name}.partial")
        shutil.copyfile(source, partial)
        if sha256_file(partial) != sha256_file(source):
            raise RepairFailed(f"{folder}/{name} does not verify")
        os.replace(partial, target)
        self.repaired.append((folder, name))
        return target

    def write_extra_model_paths(self, path: Path) -> Path:
        return write_extra_model_paths(path, self.weights_dir, weight_folders())
