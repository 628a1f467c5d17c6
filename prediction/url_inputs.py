"""Inputs given as URLs inside a workflow: downloaded into ComfyUI's input folder, the workflow rewritten.

Any input whose whole value is an http(s) URL (e.g. `LoadImage.image`) is downloaded into the input
folder, and the value becomes the file's name there, which is what `LoadImage` and similar nodes take.
A URL that appears several times is downloaded once. Loader inputs (weights) are left alone: they go to
model folders through weightkit's store (`weightkit.url_weights`).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prediction.settings import InputSettings
from prediction.url_download import download_to_folder
from prediction.workflow_urls import url_values
from weightkit.loaders import LoaderMap
from weightkit.urlforms import display_url

__all__ = ["DownloadedInput", "download_url_inputs"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DownloadedInput:
    """A node input whose URL was downloaded: `name` is the file's name in the input folder."""

    node_id: str
    input_name: str
    url: str
    name: str


def download_url_inputs(
    workflow: Mapping[str, Any],
    input_dir: Path,
    *,
    settings: InputSettings,
    loaders: LoaderMap,
) -> tuple[dict[str, Any], list[DownloadedInput]]:
    """Download every non-weight URL input of `workflow` into `input_dir`; the rewritten workflow (a
    copy) and what was downloaded.

    `loaders` is the manifest's loader map, which says which inputs are weights.
    Raises `URLRefusedError`, `InputDownloadError` or `InputTooLargeError` for the first URL that
    fails; files downloaded before it stay in `input_dir`, which is emptied between predictions.
    """
    rewritten = copy.deepcopy(dict(workflow))
    names: dict[str, str] = {}
    downloaded = []
    for value in url_values(workflow):
        if loaders.folder(value.class_type, value.input_name) is not None:
            continue
        if value.url not in names:
            shown = display_url(value.url)
            log.info("Downloading node %s input %r from %s", value.node_id, value.input_name, shown)
            names[value.url] = download_to_folder(value.url, input_dir, settings=settings).name
        rewritten[value.node_id]["inputs"][value.input_name] = names[value.url]
        downloaded.append(DownloadedInput(value.node_id, value.input_name, value.url, names[value.url]))
    return rewritten, downloaded
