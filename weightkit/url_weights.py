"""Weights a workflow gives as URLs (a user's LoRA), fetched into their loader's folder under their stable
name, then checked to be what the name says.

The file is fetched like any other (resumable, atomic, its sha256 computed and recorded). A CivitAI URL
is first asked of CivitAI's API: a model page means its latest version, and the sha256 the API states
verifies the bytes. Otherwise nothing can vouch for them, so after fetching the file must not be a web
page (what a link to a page, or a login wall, returns) and a `.safetensors` name must hold a whole
safetensors layout. A file that fails is moved to quarantine, not left where ComfyUI would load it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from weightkit.civitai import civitai_ids, resolve_civitai
from weightkit.download import FetchRequest, FetchSummary
from weightkit.download.verify import is_safetensors, safetensors_problem
from weightkit.errors import CivitaiError, WeightURLError
from weightkit.extract import WeightRef
from weightkit.urlforms import civitai_download_url, display_url, normalise_weight_url

if TYPE_CHECKING:
    from weightkit.store import WeightStore

__all__ = ["check_weight_file", "fetch_url_weights"]

logger = logging.getLogger(__name__)

_HTML = (b"<!doctype html", b"<html", b"<head", b"<!--")


def fetch_url_weights(
    store: WeightStore,
    refs: Iterable[WeightRef],
    *,
    url_guard: Callable[[str], object] | None,
    tokens: bool,
) -> FetchSummary:
    """Fetch each ref's URL to `<WEIGHTS_DIR>/<folder>/<name>`, several at once, and check each file.

    `tokens` says whether `HF_TOKEN` and `CIVITAI_API_TOKEN` may go to those URLs' hosts: for URLs the
    operator declared (`PRELOAD_WEIGHTS`), not for URLs a prediction's caller wrote, which could otherwise
    read the operator's private and gated files.

    Raises `WeightURLError` for a file that is not what its name says (it is quarantined), or the
    downloader's errors.
    """
    wanted: dict[Path, tuple[WeightRef, FetchRequest]] = {}
    for ref in refs:
        assert ref.url is not None and ref.folder is not None
        dest = store.settings.weights_dir / ref.folder / ref.name
        if dest not in wanted:
            wanted[dest] = (ref, _request(store, ref, dest, url_guard=url_guard, tokens=tokens))
    if not wanted:
        return FetchSummary(results=(), seconds=0.0)
    requests = [request for _, request in wanted.values()]
    if len(requests) == 1:  # its own error, not a batch's
        started = time.monotonic()
        result = store.downloader.fetch(requests[0])
        summary = FetchSummary(results=(result,), seconds=time.monotonic() - started)
    else:
        summary = store.downloader.fetch_many(requests)
    for dest, (ref, request) in wanted.items():
        try:
            check_weight_file(dest, url=request.urls[0], name=ref.name)
        except WeightURLError:
            store.quarantine(dest, folder=str(ref.folder))
            raise
    return summary


def _request(
    store: WeightStore, ref: WeightRef, dest: Path, *, url_guard: Callable[[str], object] | None, tokens: bool
) -> FetchRequest:
    """What to fetch for `ref`: its URL as it serves the file, with the sha256 CivitAI states for its own.

    A CivitAI URL that names a version is still fetched when the API cannot be asked (unverified, as
    before the API was asked); a model page names no file without it, so its `CivitaiError` is raised."""
    assert ref.url is not None
    url = normalise_weight_url(ref.url)
    sha256 = None
    if civitai_ids(url) is not None:
        try:
            found = resolve_civitai(
                url, settings=store.settings.download, guard=url_guard, send_credentials=tokens
            )
        except CivitaiError as exc:
            if (url := civitai_download_url(url) or "") == "":
                raise
            logger.warning("%s; fetching %s without a sha256 to check it against", exc.problem, url)
        else:
            url, sha256 = found.download_url, found.sha256
            logger.info(
                "CivitAI: %s is version %d of %s, sha256 %s",
                display_url(ref.url),
                found.version_id,
                found.model_name or f"model {found.model_id}",
                sha256 or "not stated",
            )
    logger.info("%s loads %s from %s", ref.where, ref.label, display_url(url))
    return FetchRequest.for_url(
        url, dest, sha256=sha256, hash_from="civitai", url_guard=url_guard, send_credentials=tokens
    )


def check_weight_file(path: Path, *, url: str, name: str) -> None:
    """Raise `WeightURLError` if the file fetched from `url` is not what its `name` says: an HTML page, or
    a `.safetensors` name without a whole safetensors layout (checked as the downloader checks it)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        head = os.pread(fd, 64, 0)
        if head.lstrip().lower().startswith(_HTML):
            raise WeightURLError(url, name, "is a web page (HTML), not a weight file")
        problem = safetensors_problem(fd, os.fstat(fd).st_size) if is_safetensors(name) else None
    finally:
        os.close(fd)
    if problem is not None:
        raise WeightURLError(url, name, f"is {problem}")
