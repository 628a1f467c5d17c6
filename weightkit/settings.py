"""Every weightkit setting, read from the environment in this one place.

Settings are read when asked for (`WeightSettings.from_env()`), never at import, and returned as a
frozen value so a caller can pass them around and tests can build their own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

BUILTIN_MANIFEST = Path(__file__).resolve().parent.parent / "weights_manifest.json"


@dataclass(frozen=True, kw_only=True)
class WeightSettings:
    """Where weights live and where their descriptions come from.

    | variable | default | meaning |
    | --- | --- | --- |
    | `COMFYUI_PATH` | `ComfyUI` | ComfyUI checkout; its `models/` folders are searched |
    | `WEIGHTS_DIR` | `weights` | the project's own weights folder; downloads land here |
    | `EXTRA_MODEL_PATHS_CONFIG` | (none) | an `extra_model_paths.yaml` to search as ComfyUI would |
    | `WEIGHTS_MANIFEST_EXTRA` | (none) | a manifest merged over the built-in one |
    """

    comfyui_path: Path = Path("ComfyUI")
    weights_dir: Path = Path("weights")
    extra_model_paths: Path | None = None
    manifest_path: Path = BUILTIN_MANIFEST
    manifest_extra: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WeightSettings:
        env = os.environ if environ is None else environ

        def path_or_none(name: str) -> Path | None:
            value = env.get(name, "").strip()
            return Path(value) if value else None

        return cls(
            comfyui_path=Path(env.get("COMFYUI_PATH", "").strip() or "ComfyUI"),
            weights_dir=Path(env.get("WEIGHTS_DIR", "").strip() or "weights"),
            extra_model_paths=path_or_none("EXTRA_MODEL_PATHS_CONFIG"),
            manifest_extra=path_or_none("WEIGHTS_MANIFEST_EXTRA"),
        )
