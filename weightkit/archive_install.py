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
    `<WEIGHTS_DIR>/loras/`. A URL is fetched through the downloader (vetted by `url_guard`, no
    tokens) and kept under a name of its URL, so the next cold start does not fetch it again; a path
    (or `file://`) is read in place. Members are checked and counted against the weight archive limits
    before anything is written; each file is moved into place by a rename.

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
        installed = [
            _install_member(store.settings.weights_dir, path, staging)
            for path in safe_extract_tar(archive, staging, limits=limits)
        ]
    except tarfile.TarError as exc:
        raise OSError(f"the weights archive {display_url(source)} is not a readable tar ({exc})") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("installed %d weight file(s) from %s", len(installed), display_url(source))
    return installed


def _install_member(weights_dir: Path, path: Path, staging: Path) -> Path:
    relative = path.relative_to(staging)
    if relative.parts[0] == "models" and len(relative.parts) > 2:
        relative = relative.relative_to("models")
    target = weights_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    path.replace(target)
    return target
