"""What a ComfyUI started here needs before it starts: its folders, and its model-paths configs in order.

The input, output and temp folders are created (a deployment's own folders, made when none were
configured, are removed when this process exits). The weights directory's `extra_model_paths.yaml` is
written, and the configs are given to ComfyUI as: the user's `EXTRA_MODEL_PATHS_CONFIG`, then the custom
node packs' configs, then the weights directory's last: ComfyUI puts each `is_default` path first in
turn, so the weights directory is searched first.

`CACHE_BARRIER` is the prompt that makes a cache reset certain (see `comfyui.ComfyUI.reset_cache`).
"""

from __future__ import annotations

import atexit
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from comfyrun.settings import RuntimeSettings
from weightkit.modelpaths import weight_folders, write_extra_model_paths

__all__ = ["CACHE_BARRIER", "prepare_folders"]

# Queued after `POST /free` and followed to its end before the next prompt: ComfyUI's worker reads the
# flags /free sets only after its next wait for work, so a prompt queued at once may run first, served
# from the cache it was meant to clear. The worker applies them right after finishing this one, before it
# takes the next prompt. Two core nodes, a 1x1 image: a few milliseconds.
CACHE_BARRIER: dict[str, Any] = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 1, "height": 1, "batch_size": 1, "color": 0}},
    "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
}


def prepare_folders(
    settings: RuntimeSettings,
    write_weights_paths: Callable[[Path], Path] | None,
    *,
    extra: Sequence[Path] = (),
) -> list[Path]:
    """Create ComfyUI's folders, write the weights directory's config (with `write_weights_paths`, the
    store's, else for ComfyUI's own folder types) and return every config in the order ComfyUI loads."""
    own = settings.own_folder()
    if own is not None:
        atexit.register(shutil.rmtree, own, ignore_errors=True)
    for directory in (settings.input_dir, settings.output_dir, settings.temp_dir):
        directory.mkdir(parents=True, exist_ok=True)
    if write_weights_paths is not None:
        write_weights_paths(settings.model_paths_file)
    else:
        write_extra_model_paths(settings.model_paths_file, settings.weights.weights_dir, weight_folders())
    return [*filter(None, [settings.weights.extra_model_paths]), *extra, settings.model_paths_file]
