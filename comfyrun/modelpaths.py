"""The `extra_model_paths.yaml` that makes ComfyUI look in the weights folder first.

Downloads land in `<WEIGHTS_DIR>/<folder>/<name>`; the file marks that folder `is_default`, so ComfyUI
searches it before its own `models/` and a fetched file wins over a stale copy elsewhere. Used when no
weight store is given; the store writes the same file, knowing every folder of the manifest.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import yaml

from weightkit.folders import canonical_folder

__all__ = ["COMFYUI_FOLDERS", "write_extra_model_paths"]

# ComfyUI's model folder types (folder_paths.py), besides those of custom nodes.
COMFYUI_FOLDERS: tuple[str, ...] = (
    "audio_encoders",
    "checkpoints",
    "classifiers",
    "clip_vision",
    "configs",
    "controlnet",
    "diffusers",
    "diffusion_models",
    "embeddings",
    "gligen",
    "hypernetworks",
    "loras",
    "model_patches",
    "photomaker",
    "style_models",
    "text_encoders",
    "upscale_models",
    "vae",
    "vae_approx",
)


def write_extra_model_paths(path: Path, weights_dir: Path, folders: Iterable[str] = ()) -> Path:
    """Write (atomically) the yaml naming `weights_dir/<folder>` for ComfyUI's folders, `folders`, and
    the folders already present in `weights_dir` (a legacy `clip/` counts as `text_encoders`)."""
    present = [e.name for e in weights_dir.iterdir() if e.is_dir()] if weights_dir.is_dir() else []
    subdirs: dict[str, list[str]] = {}
    # ComfyUI puts each `is_default` path first in turn, so the canonical directory goes last to win.
    for name in sorted({*COMFYUI_FOLDERS, *folders, *present}, key=lambda n: n == canonical_folder(n)):
        if not name.startswith("."):
            subdirs.setdefault(canonical_folder(name), []).append(name)
    config = {
        "cog_comfyui_weights": {
            "base_path": str(weights_dir.absolute()),
            "is_default": True,
            **{folder: "\n".join(dirs) for folder, dirs in sorted(subdirs.items())},
        }
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    os.replace(partial, path)
    return path
