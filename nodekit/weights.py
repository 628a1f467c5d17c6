"""The weights side of custom node packs, where weightkit alone cannot express it.

- `manifest_with_lock`: the weights manifest (built-in + `WEIGHTS_MANIFEST_EXTRA`) with the lock's pack
  weights, loaders, needs and folders merged over it: what a `WeightStore` should be given.
- `write_pack_model_paths`: an `extra_model_paths.yaml` for pack folders that live elsewhere than
  `<WEIGHTS_DIR>/<folder>` (the Impact Subpack lists `ultralytics_bbox` from `ultralytics/bbox`), so
  ComfyUI lists the files fetched there.
- `link_pack_weights`: a weight whose pack opens it at a fixed place (InsightFace models under
  `<ComfyUI>/models/insightface`, no setting moves it) is fetched into the weights directory like any
  other and linked from that place (`target` in the lock), once the file is there.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import yaml

from nodekit.lock import Lock
from weightkit.manifest import Manifest
from weightkit.manifest_file import load_manifest
from weightkit.settings import WeightSettings

__all__ = ["PACKS_SECTION", "link_pack_weights", "manifest_with_lock", "write_pack_model_paths"]

logger = logging.getLogger(__name__)

PACKS_SECTION = "nodekit_pack_folders"


def manifest_with_lock(settings: WeightSettings, lock: Lock) -> Manifest:
    """`load_manifest(settings)` merged with `lock.as_manifest()`; raises `ManifestError`/`LockError`."""
    base = load_manifest(settings.manifest_path, settings.manifest_extra)
    return base.merged(lock.as_manifest(), source=lock.source)


def write_pack_model_paths(path: Path | str, lock: Lock, weights_dir: Path | str) -> Path | None:
    """Write the `is_default` config for `lock.folder_paths()`, or nothing (None) when there are none.

    Give it to ComfyUI as an `--extra-model-paths-config` before weightkit's weights-dir config (which
    must stay last). Written atomically; returns the path.
    """
    folders = lock.folder_paths()
    if not folders:
        return None
    weights = Path(os.path.abspath(weights_dir))
    section: dict[str, Any] = {"is_default": True}
    section.update({folder: str(weights / sub) for folder, sub in sorted(folders.items())})
    text = "# Written by nodekit: pack folders kept inside the weights directory.\n" + yaml.safe_dump(
        {PACKS_SECTION: section}, sort_keys=False
    )
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, target)
    return target


def link_pack_weights(lock: Lock, weights_dir: Path | str, comfyui_path: Path | str) -> list[Path]:
    """Link each `target` to its weight in `<weights_dir>/<folder>/<name>`, for the weights present.

    A weight not fetched yet gets no link (a dangling one would make a pack skip its own download and
    fail); a file a user put at the target is left alone. Call it after a preload or fetch. Returns the
    links made or renewed.
    """
    weights = Path(os.path.abspath(weights_dir))
    comfyui = Path(os.path.abspath(comfyui_path))
    made = []
    for key, target in sorted(lock.targets().items()):
        source = weights / key
        place = comfyui / target
        if os.path.islink(place) and not source.is_file():
            if os.readlink(place) == str(source):
                place.unlink()  # ours, and its file is gone
            continue
        if not source.is_file() or (os.path.lexists(place) and not os.path.islink(place)):
            continue
        if os.path.islink(place) and os.readlink(place) == str(source):
            continue
        place.parent.mkdir(parents=True, exist_ok=True)
        temporary = place.with_name(f".{place.name}.{os.getpid()}.link")
        if os.path.lexists(temporary):
            temporary.unlink()
        os.symlink(source, temporary)
        os.replace(temporary, place)
        logger.info("custom nodes: linked %s to %s", place, source)
        made.append(place)
    return made
