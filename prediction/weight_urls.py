"""Weights given by URL in a loader input (how users bring their own LoRA or checkpoint): a stable name.

A loader input such as `LoraLoader.lora_name` may hold an http(s) URL instead of a file name. The file
is fetched by weightkit's downloader into the loader's model folder under a name that depends only on
the URL, so the same URL is fetched once and found on disk by every later prediction, and the workflow
is rewritten to that name before anything else reads it.

The stable name is `<12 hex digits of sha256(URL)>-<file name from the URL's path>`:
- the hash is of the URL without its fragment and without query parameters that change between
  requests for the same file (`download`, `token`, and signing parameters of S3, GCS, Azure and
  CloudFront presigned URLs), so a Hugging Face `.../x.safetensors?download=true` link and a freshly
  signed link name the same file;
- the file name keeps the URL's extension when it is one ComfyUI lists in model folders (without one,
  ComfyUI would not accept the name). A URL with no such extension, like CivitAI's
  `/api/download/models/123`, is named `<hash>-123.safetensors`: the server's Content-Disposition is
  only known after fetching, and a name must be known before, to find the file on disk without asking
  the network. After fetching, `check_weight_file` refuses a file that is not what its extension says
  (a pickled checkpoint behind an extension-less URL, or an HTML page), with an error asking for a
  URL that ends with the real extension.
"""

from __future__ import annotations

import copy
import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from prediction.input_errors import WeightURLError
from prediction.url_download import url_file_name
from prediction.workflow_urls import url_values
from weightkit.download.verify import is_safetensors, safetensors_problem
from weightkit.folders import has_model_extension
from weightkit.loaders import LoaderMap

__all__ = [
    "WeightURL",
    "check_weight_file",
    "find_weight_urls",
    "stable_weight_name",
    "use_weight_names",
]

# Query parameters that differ between requests for one file: Hugging Face's `download`, tokens, and
# the signatures and expiry times of CloudFront, Azure (SAS: sig, se, st, sp, sv, sr), S3 and GCS
# (the `x-amz-` and `x-goog-` prefixes) presigned URLs.
_VOLATILE_QUERY = frozenset(
    [
        "download",
        "token",
        "expires",
        "signature",
        "policy",
        "key-pair-id",
        "sig",
        "se",
        "st",
        "sp",
        "sv",
        "sr",
    ]
)
_VOLATILE_QUERY_PREFIXES = ("x-amz-", "x-goog-")
_HTML = (b"<!doctype html", b"<html", b"<head", b"<!--")


@dataclass(frozen=True)
class WeightURL:
    """A loader input that holds a URL: where the file goes (`folder`/`name`) and where it comes from."""

    node_id: str
    class_type: str
    input_name: str
    folder: str
    url: str
    name: str


def find_weight_urls(workflow: Mapping[str, Any], loaders: LoaderMap) -> list[WeightURL]:
    """Every loader input of `workflow` (a parsed API workflow) that holds an http(s) URL; `loaders` is
    the manifest's loader map."""
    found = []
    for value in url_values(workflow):
        folder = loaders.folder(value.class_type, value.input_name)
        if folder is not None:
            found.append(
                WeightURL(
                    node_id=value.node_id,
                    class_type=value.class_type,
                    input_name=value.input_name,
                    folder=folder,
                    url=value.url,
                    name=stable_weight_name(value.url),
                )
            )
    return found


def stable_weight_name(url: str) -> str:
    """The file name a weight fetched from `url` is stored under; see the module docstring."""
    parts = urlsplit(url.strip())
    query = [
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
        if key.lower() not in _VOLATILE_QUERY and not key.lower().startswith(_VOLATILE_QUERY_PREFIXES)
    ]
    identity = urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path, urlencode(query), ""))
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:12]
    name = url_file_name(url, default="weight")
    if not has_model_extension(name):
        name += ".safetensors"
    return f"{digest}-{name}"


def use_weight_names(workflow: Mapping[str, Any], weights: Iterable[WeightURL]) -> dict[str, Any]:
    """A copy of `workflow` whose URL loader inputs name the stored files instead."""
    rewritten = copy.deepcopy(dict(workflow))
    for weight in weights:
        rewritten[weight.node_id]["inputs"][weight.input_name] = weight.name
    return rewritten


def check_weight_file(weight: WeightURL, path: Path) -> None:
    """Raise `WeightURLError` if the file fetched for `weight` is not what its name says.

    Any weight must not be an HTML page (what a link to a web page, or a login wall, returns); a
    `.safetensors` name needs a whole safetensors layout, checked as the downloader checks it.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        head = os.pread(fd, 64, 0)
        if head.lstrip().lower().startswith(_HTML):
            raise WeightURLError(weight.url, weight.name, "is a web page (HTML), not a weight file")
        problem = safetensors_problem(fd, os.fstat(fd).st_size) if is_safetensors(weight.name) else None
    finally:
        os.close(fd)
    if problem is not None:
        raise WeightURLError(weight.url, weight.name, f"is {problem}")
