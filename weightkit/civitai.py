"""CivitAI pages as users paste them, resolved through CivitAI's API to the file they mean.

A model page (`https://civitai.com/models/<id>[/<slug>]`) names no file: its latest version is
`modelVersions[0]` of `GET /api/v1/models/<id>`. A version page (`...?modelVersionId=<v>`) and a
download URL (`/api/download/models/<v>`) name a version, whose files `GET /api/v1/model-versions/<v>`
lists (and the model answer too). Of a version's files the one marked `primary` is the weight. The API
states its `hashes.SHA256` (upper-case hex, given here in lower case) and `sizeKB`, which is rounded
(`6775430.35`), so no exact size comes from it: a download is verified against the sha256 alone, and
whoever needs the exact size asks the download URL (`hostfacts.probe_size`).

The model answer also states what the licence allows: `allowCommercialUse` (a list such as `["Image",
"Rent"]`, or in older answers one word; `None` or an empty list: no commercial use), `allowDerivatives`,
`allowNoCredit`. The version answer does not; `permissions=True` asks the model for a version URL.

Requests go through the downloader's guarded GET (`hostfacts.get_json`) to `WEIGHTS_CIVITAI_ENDPOINT`,
with `CIVITAI_API_TOKEN` only when the caller allows credentials. `weightkit/url_weights.py` can pass
`resolve_civitai(url, settings=..., guard=...)`'s `download_url` and `sha256` to
`FetchRequest.for_url(..., sha256=..., hash_from="civitai")`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from weightkit.download.hostfacts import get_json
from weightkit.download.httprange import Guard, RetryableError, SourceError
from weightkit.errors import CivitaiError
from weightkit.settings import DownloadSettings
from weightkit.urlforms import display_url

__all__ = ["FOLDERS", "CivitaiFile", "civitai_ids", "resolve_civitai"]

API = "https://civitai.com/api/v1"
_HOSTS = ("civitai.com", "www.civitai.com")
_MODEL = re.compile(r"/models/(?P<id>\d+)(?:/[^/]*)?/?")
_DOWNLOAD = re.compile(r"/api/download/models/(?P<version>\d+)/?")
_SHA256 = re.compile(r"[0-9a-f]{64}")

# CivitAI's model types → the ComfyUI folder their files go in.
FOLDERS = {
    "Checkpoint": "checkpoints",
    "LORA": "loras",
    "LoCon": "loras",
    "DoRA": "loras",
    "TextualInversion": "embeddings",
    "VAE": "vae",
    "Controlnet": "controlnet",
    "Upscaler": "upscale_models",
    "Hypernetwork": "hypernetworks",
}


@dataclass(frozen=True, kw_only=True)
class CivitaiFile:
    """A version's primary file as CivitAI's API states it. `sha256` is None when the API states none;
    `size_kb` is approximate. `commercial_use` is None when not known (a version URL without
    `permissions=True`), empty when the licence allows none."""

    download_url: str
    version_id: int
    sha256: str | None
    size_kb: float | None
    name: str | None
    model_id: int | None = None
    model_name: str | None = None
    model_type: str | None = None
    commercial_use: tuple[str, ...] | None = None
    derivatives: bool | None = None

    @property
    def folder(self) -> str | None:
        """The ComfyUI folder of the model's type, when it is one ComfyUI has."""
        return FOLDERS.get(self.model_type or "")

    @property
    def non_commercial(self) -> bool:
        return self.commercial_use == ()


def civitai_ids(url: str) -> tuple[int | None, int | None] | None:
    """`(model id, version id)` named by a CivitAI model page, version page or download URL (either
    may be None), or None when `url` is none of these (or no well-formed URL at all)."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if (parts.hostname or "").lower() not in _HOSTS:
        return None
    download = _DOWNLOAD.fullmatch(parts.path)
    if download is not None:
        return None, int(download["version"])
    model = _MODEL.fullmatch(parts.path)
    if model is None:
        return None
    version = dict(parse_qsl(parts.query)).get("modelVersionId", "")
    return int(model["id"]), int(version) if version.isascii() and version.isdigit() else None


def resolve_civitai(
    url: str,
    *,
    settings: DownloadSettings,
    guard: Guard | None = None,
    send_credentials: bool = False,
    permissions: bool = False,
) -> CivitaiFile:
    """The file a CivitAI page or download URL means, with what the API states about it (one request;
    two for a download URL with `permissions`). Raises `CivitaiError` for a URL that names no CivitAI
    model, an API that cannot be reached or does not know the model, or a version without files."""
    ids = civitai_ids(url)
    if ids is None:
        raise CivitaiError(url, "it is not a CivitAI model page, version page or download URL")
    model_id, version_id = ids

    def ask(path: str) -> Any:
        try:
            return get_json(
                f"{API}/{path}", settings=settings, guard=guard, send_credentials=send_credentials
            )
        except (SourceError, RetryableError) as exc:
            raise CivitaiError(
                url, f"asking its API ({display_url(API + '/' + path)}) failed: {exc.reason}"
            ) from exc

    if model_id is None:
        assert version_id is not None
        version = _object(ask(f"model-versions/{version_id}"), url, "model version")
        model_id = version.get("modelId") if isinstance(version.get("modelId"), int) else None
        model = _object(ask(f"models/{model_id}"), url, "model") if permissions and model_id else None
        return _file(url, version, model or _object(version.get("model") or {}, url, "model"), model_id)
    model = _object(ask(f"models/{model_id}"), url, "model")
    versions = [v for v in model.get("modelVersions") or [] if isinstance(v, dict)]
    chosen = next((v for v in versions if v.get("id") == version_id), None) if version_id else None
    if version_id is not None and chosen is None:
        chosen = _object(ask(f"model-versions/{version_id}"), url, "model version")
    if chosen is None:
        if not versions:
            raise CivitaiError(url, f"model {model_id} has no published version")
        chosen = versions[0]  # the latest
    return _file(url, chosen, model, model_id)


def _object(value: Any, url: str, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CivitaiError(url, f"its API's answer for the {what} is not a JSON object")
    return value


def _file(url: str, version: dict[str, Any], model: dict[str, Any], model_id: int | None) -> CivitaiFile:
    version_id = version.get("id")
    if not isinstance(version_id, int):
        raise CivitaiError(url, "its API's answer names no version id")
    files = [f for f in version.get("files") or [] if isinstance(f, dict)]
    primary = next((f for f in files if f.get("primary")), None) or next(
        (f for f in files if f.get("type") == "Model"), files[0] if files else None
    )
    if primary is None:
        raise CivitaiError(url, f"version {version_id} lists no file")
    sha256 = str((primary.get("hashes") or {}).get("SHA256") or "").lower()
    size_kb = primary.get("sizeKB")
    return CivitaiFile(
        download_url=f"https://civitai.com/api/download/models/{version_id}",
        version_id=version_id,
        sha256=sha256 if _SHA256.fullmatch(sha256) else None,
        size_kb=float(size_kb) if isinstance(size_kb, (int, float)) else None,
        name=primary.get("name") if isinstance(primary.get("name"), str) else None,
        model_id=model_id,
        model_name=model.get("name") if isinstance(model.get("name"), str) else None,
        model_type=model.get("type") if isinstance(model.get("type"), str) else None,
        commercial_use=_commercial_use(model),
        derivatives=model.get("allowDerivatives")
        if isinstance(model.get("allowDerivatives"), bool)
        else None,
    )


def _commercial_use(model: dict[str, Any]) -> tuple[str, ...] | None:
    """`allowCommercialUse` as a tuple of what is allowed: a list, or one word (`None`: nothing)."""
    value = model.get("allowCommercialUse")
    if isinstance(value, str):
        return () if value == "None" else (value,)
    if isinstance(value, list):
        return tuple(str(v) for v in value if v and v != "None")
    return None
