"""Fetch again the weight files an execution error found corrupt, through the store that verifies them."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

from comfyrun.errors import WeightCorruptError
from weightkit.errors import WeightkitError

__all__ = ["fetch_again"]

logger = logging.getLogger(__name__)


class Repairer(Protocol):
    def repair(self, name: str, folder: str) -> Path: ...


def fetch_again(store: Repairer, corrupt: WeightCorruptError) -> list[Path]:
    """Quarantine and fetch again each file of `corrupt`; their new paths. Raises `WeightCorruptError`
    saying what was tried when a file's folder is unknown or fetching it again fails."""
    paths = []
    for folder, name in corrupt.files:
        if folder is None:
            raise WeightCorruptError(
                corrupt.data,
                files=corrupt.files,
                tried=f"The model folder node {corrupt.node_id} reads '{name}' from is unknown, so it was "
                "not fetched again; replace the file by hand, or add its loader to the manifest.",
            ) from corrupt
        logger.warning("%s/%s looks corrupt (%s); fetching it again", folder, name, corrupt.exception_type)
        try:
            paths.append(store.repair(name, folder))
        except WeightkitError as exc:
            raise WeightCorruptError(
                corrupt.data, files=corrupt.files, tried=f"Fetching it again failed: {exc}"
            ) from exc
    return paths
