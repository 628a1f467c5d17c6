"""Cog's `weights` archive (a `.tar` of model folders, as Replicate passes trained weights), installed into
the weights directory by the store: fetched once per URL, checked and counted before anything is written,
each file moved into place by a rename.
"""

from __future__ import annotations

import logging
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from weightkit.download import ArchiveLimits, FetchRequest, safe_extract_tar
from weightkit.errors import UnsafeArchiveError
from weightkit.folders import canonical_folder
from weightkit.layout import StateDir
from weightkit.urlforms import display_url

if TYPE_CHECKING:
    from weightkit.store import WeightStore

__all__ = ["install_archive"]

logger = logging.getLogger(__name__)


def install_archive(
    store: WeightStore, source: str, *, url_guard: Callable[[str], object] | None = None
) -> list[Path]:
    """Unpack a `.tar` of model folders (Cog's `weights`, as Replicate passes trained weights) into the
    weights directory: `loras/x.safetensors` (or `models/loras/x.safetensors`) lands in
    `<WEIGHTS_DIR>/loras/`, and `clip/` or `unet/` in `text_encoders/` or `diffusion_models/`, the
    folders ComfyUI means by those legacy names. A URL is fetched through the downloader (vetted by
    `url_guard`, no tokens) and kept under a name of its URL, so the next cold start does not fetch it
    again; a path (or `file://`) is read in place. Members are checked and counted against the weight
    archive limits before anything is written; each file is moved into place by a rename.

    Raises `UnsafeArchiveError`, `ArchiveTooLargeError`, `DiskSpaceError`, the downloader's errors, or
    `OSError` for an archive that is not a readable tar.
    """
    if source.startswith(("http://", "https://")):
        archive = store.state.user_weights_archive(source)
        request = FetchRequest.for_url(
            source, archive, unpack=False, url_guard=url_guard, send_credentials=False
        )
        store.downloader.fetch(request)
    else:
        archive = Path(source.removeprefix("file://"))
    store.state.staging.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=store.state.staging, prefix="weights-"))
    try:
        limits = ArchiveLimits.for_weights(store.settings.download)
        extracted = safe_extract_tar(archive, staging, limits=limits)
        moves = [(path, _target(store.weights_dir, path, staging, source)) for path in extracted]
        installed = [_install(path, target) for path, target in moves]
    except tarfile.TarError as exc:
        raise OSError(f"the weights archive {display_url(source)} is not a readable tar ({exc})") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("installed %d weight file(s) from %s", len(installed), display_url(source))
    return installed


def _target(weights_dir: Path, path: Path, staging: Path, source: str) -> Path:
    """Where an extracted member goes: `models/` dropped, a legacy folder name (`clip`, `unet`) turned
    into the folder type ComfyUI means by it, which is the folder searched in the weights directory.
    Raises `UnsafeArchiveError` for a member under `.weightkit/`, weightkit's own state (an archive must
    not plant verified records), before anything is moved into place."""
    parts = path.relative_to(staging).parts
    if parts[0] == "models" and len(parts) > 2:
        parts = parts[1:]
    if parts[0] == StateDir(weights_dir).root.name:
        raise UnsafeArchiveError(
            display_url(source),
            "/".join(parts),
            "would be written into weightkit's own state folder (.weightkit), where verified records "
            "live; an archive may only hold model folders such as loras/ or checkpoints/",
        )
    if len(parts) > 1:
        parts = (canonical_folder(parts[0]), *parts[1:])
    return weights_dir.joinpath(*parts)


def _install(path: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    path.replace(target)
    return target
