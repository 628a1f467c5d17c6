"""Weight URLs as users paste them, turned into the URL that serves the file.

- Hugging Face: `https://huggingface.co/<org>/<repo>/blob/<rev>/<path>` (the web page a browser shows)
  becomes `.../resolve/<rev>/<path>` (the file); `hf://<org>/<repo>/<path>[@<rev>]` becomes the same
  resolve URL, revision `main` unless given; `?download=true` is dropped.
- CivitAI: a model version page (`https://civitai.com/models/<id>[/<slug>]?modelVersionId=<v>`) becomes
  `https://civitai.com/api/download/models/<v>`. A model page without a version needs CivitAI's API to
  know its latest version: `civitai_model_id` names the model for the caller to look up.
- Anything else is returned as it is (surrounding blanks removed).

A weight known only by its URL is stored under a name that depends only on the URL, so the same URL is
fetched once and found on disk by every later prediction: `<12 hex digits of sha256(URL)>-<file name>`.
- The hash is of the normalised URL without its fragment and without query parameters that change
  between requests for the same file (`download`, `token`, and signing parameters of S3, GCS, Azure and
  CloudFront presigned URLs), so a Hugging Face `blob` page, its `resolve` URL and `hf://` form, and a
  freshly signed link all name the same file.
- The file name is the URL's last path segment, made safe, keeping its extension when it is one ComfyUI
  lists in model folders (else ComfyUI would not accept the name); a CivitAI download is
  `civitai-<version>.safetensors`. A name must be known before fetching, to find the file on disk without
  asking the network, so the server's Content-Disposition is not used; what arrives is checked against
  the name's type afterwards.

Pure functions: no network, no filesystem.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from weightkit.folders import has_model_extension

__all__ = [
    "civitai_download_url",
    "civitai_model_id",
    "display_url",
    "is_weight_url",
    "normalise_weight_url",
    "safe_file_name",
    "stable_weight_name",
    "url_file_name",
]

_HF_HOSTS = ("huggingface.co", "hf.co", "www.huggingface.co")
_HF_SCHEME = re.compile(r"hf://(?P<repo>[^/@\s]+/[^/@\s]+)/(?P<path>[^@\s]+?)(?:@(?P<rev>[^@\s/]+))?")
_CIVITAI_HOSTS = ("civitai.com", "www.civitai.com")
_CIVITAI_MODEL = re.compile(r"/models/(?P<id>\d+)(?:/[^/]*)?/?")
_CIVITAI_DOWNLOAD = re.compile(r"/api/download/models/(?P<version>\d+)")
_MAX_NAME = 120  # characters of a file name made from a URL; long enough, far from filesystem limits
_UNSAFE = re.compile(r"[^\w.+-]+")
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


def display_url(url: str) -> str:
    """The URL without user info, query or fragment, as logs and errors show it: signed CDN URLs and
    `?token=` stay out of them."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def is_weight_url(value: str) -> bool:
    """An http(s) or `hf://` URL: a weight to fetch rather than a file name."""
    return value.strip().lower().startswith(("http://", "https://", "hf://"))


def normalise_weight_url(url: str) -> str:
    """The URL that serves the file `url` points at; see the module docstring."""
    text = url.strip()
    hf = _HF_SCHEME.fullmatch(text)
    if hf is not None:
        rev = hf["rev"] or "main"
        return f"https://huggingface.co/{hf['repo']}/resolve/{quote(rev, safe='')}/{hf['path']}"
    parts = urlsplit(text)
    host = (parts.hostname or "").lower()
    if host in _HF_HOSTS:
        return _hugging_face(parts)
    if host in _CIVITAI_HOSTS:
        return civitai_download_url(text) or text
    return text


def civitai_download_url(url: str) -> str | None:
    """The download URL of a CivitAI model version page, or None when the URL names no version."""
    parts = urlsplit(url.strip())
    if (parts.hostname or "").lower() not in _CIVITAI_HOSTS:
        return None
    if parts.path.startswith("/api/download/models/"):
        return urlunsplit(("https", "civitai.com", parts.path, parts.query, ""))
    version = dict(parse_qsl(parts.query)).get("modelVersionId", "")
    if _CIVITAI_MODEL.fullmatch(parts.path) and version.isdigit():
        return f"https://civitai.com/api/download/models/{version}"
    return None


def civitai_model_id(url: str) -> str | None:
    """The model id of a CivitAI model page that names no version (its latest is then wanted)."""
    parts = urlsplit(url.strip())
    match = _CIVITAI_MODEL.fullmatch(parts.path)
    if (parts.hostname or "").lower() not in _CIVITAI_HOSTS or match is None:
        return None
    return None if "modelVersionId" in dict(parse_qsl(parts.query)) else match["id"]


def _hugging_face(parts: SplitResult) -> str:
    segments = parts.path.split("/")
    # /<org>/<repo>/blob/<rev>/<path...>, also /datasets/<org>/<repo>/blob/...
    offset = 3 if segments[1:2] == ["datasets"] else 2
    if len(segments) > offset + 2 and segments[offset + 1] == "blob":
        segments[offset + 1] = "resolve"
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "download"]
    return urlunsplit(("https", "huggingface.co", "/".join(segments), urlencode(kept), ""))


def stable_weight_name(url: str) -> str:
    """The file name a weight fetched from `url` is stored under; see the module docstring."""
    url = normalise_weight_url(url)
    parts = urlsplit(url)
    query = [
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
        if key.lower() not in _VOLATILE_QUERY and not key.lower().startswith(_VOLATILE_QUERY_PREFIXES)
    ]
    identity = urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path, urlencode(query), ""))
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:12]
    civitai = _CIVITAI_DOWNLOAD.fullmatch(parts.path) if parts.hostname == "civitai.com" else None
    name = f"civitai-{civitai['version']}" if civitai else url_file_name(url, default="weight")
    if not has_model_extension(name):
        name += ".safetensors"
    return f"{digest}-{name}"


def url_file_name(url: str, default: str = "download") -> str:
    """The last segment of the URL's path, percent-decoded and made safe; `default` when there is none."""
    segment = unquote(urlsplit(url).path).rsplit("/", 1)[-1]
    return safe_file_name(segment) or default


def safe_file_name(raw: str) -> str:
    """A plain file name: no folder parts, no leading dot, only letters, digits, `_.+-`; may be empty."""
    name = unicodedata.normalize("NFC", raw.replace("\\", "/").rsplit("/", 1)[-1])
    name = _UNSAFE.sub("_", name).lstrip("._")
    if len(name) > _MAX_NAME:
        stem, dot, extension = name.rpartition(".")
        if dot and 0 < len(extension) <= 16:
            name = stem[: _MAX_NAME - len(extension) - 1] + "." + extension
        else:
            name = name[:_MAX_NAME]
    return name
