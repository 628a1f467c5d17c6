"""Weight URLs as users paste them, turned into the URL that serves the file.

- Hugging Face: `https://huggingface.co/<org>/<repo>/blob/<rev>/<path>` (the web page a browser shows)
  becomes `.../resolve/<rev>/<path>` (the file); `?download=true` is dropped. `hf://` paths follow
  huggingface_hub's `HfFileSystem.resolve_path` (huggingface/huggingface_hub,
  src/huggingface_hub/hf_file_system.py at 0174b3df; prefixes from `constants.REPO_TYPES_URL_PREFIXES`):
  `hf://[datasets/|spaces/]<org>/<repo>[@<rev>]/<path>`, the revision percent-decoded (`refs%2Fpr%2F1`)
  or one of its refs with slashes (`refs/pr/<n>`, `refs/convert/<x>`), `main` unless given. This
  project's earlier `hf://<org>/<repo>/<path>@<rev>` still works. Each becomes the same resolve URL
  (`https://huggingface.co/datasets/<org>/<repo>/resolve/<rev>/<path>` for a dataset).
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
    "url_problem",
]

_HF_HOSTS = ("huggingface.co", "hf.co", "www.huggingface.co")
_HF_KINDS = ("datasets/", "spaces/")  # HfFileSystem's repository-type prefixes; models have none
_HF_SLASHED_REV = re.compile(r"refs/convert/\w+|refs/pr/\d+")  # revisions HfFileSystem lets hold '/'
_CIVITAI_HOSTS = ("civitai.com", "www.civitai.com")
_CIVITAI_MODEL = re.compile(r"/models/(?P<id>\d+)(?:/[^/]*)?/?")
_CIVITAI_DOWNLOAD = re.compile(r"/api/download/models/(?P<version>\d+)")
# UTF-8 bytes of a file name made from a URL: long enough, and with the stable name's prefix, an added
# `.safetensors` and the downloader's `.<tag>.part.json.tmp` still far below NAME_MAX (255 bytes).
_MAX_NAME_BYTES = 120
_UNSAFE = re.compile(r"[^\w.+-]+")
_UNSENDABLE = re.compile(r"[\x00-\x20\x7f]")  # http.client refuses these in a request line
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
    `?token=` stay out of them. Never raises, since errors about malformed URLs show them too."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed '[': cut the same parts out of the text
        head, sep, rest = url.partition("://")
        head, rest = (head, rest) if sep else ("", url)
        netloc, slash, path = re.split(r"[?#]", rest, maxsplit=1)[0].partition("/")
        return f"{head}{sep}{netloc.rpartition('@')[2]}{slash}{path}"
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def is_weight_url(value: str) -> bool:
    """An http(s) or `hf://` URL: a weight to fetch rather than a file name."""
    return value.strip().lower().startswith(("http://", "https://", "hf://"))


def url_problem(url: str) -> str | None:
    """Why nothing can be fetched from `url` as written, as a phrase following "it"; None when it is
    well formed (whether its host answers is another matter). Callers refuse such a URL up front, with
    who gave it, rather than fail deep in the downloader."""
    text = url.strip()
    if text[:5].lower() == "hf://" and _hf_path_url(text[5:]) is None:
        return (
            "is not the hf:// path of a file: write hf://<org>/<repo>/<path>, hf://<org>/<repo>@<revision>/"
            "<path>, or hf://datasets/... or hf://spaces/... for those repositories"
        )
    if _UNSENDABLE.search(text):
        return "contains a space or control character: percent-encode it (a space is %20)"
    try:
        parts = urlsplit(normalise_weight_url(text))
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number from 0 to 65535
    except ValueError as exc:
        return f"is not a well-formed URL ({exc})"
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return "is not an http(s) URL with a host name"
    return None


def normalise_weight_url(url: str) -> str:
    """The URL that serves the file `url` points at; see the module docstring. A malformed URL is
    returned as it is (without surrounding blanks): `url_problem` says what is wrong with it."""
    text = url.strip()
    if text[:5].lower() == "hf://":
        return _hf_path_url(text[5:]) or text
    parts = _split(text)
    host = (parts.hostname or "").lower() if parts is not None else ""
    if parts is not None and host in _HF_HOSTS:
        return _hugging_face(parts)
    if host in _CIVITAI_HOSTS:
        return civitai_download_url(text) or text
    return text


def _hf_path_url(path: str) -> str | None:
    """The resolve URL of `hf://<path>` (see the module docstring), or None when it names no file."""
    kind = next((prefix for prefix in _HF_KINDS if path.startswith(prefix)), "")
    org, _, rest = path[len(kind) :].partition("/")
    repo, _, rest = rest.partition("/")
    if "@" in repo:  # HfFileSystem's form: <repo>@<rev>/<path>, where <rev> may be a ref with slashes
        repo, _, rev_and_path = f"{repo}/{rest}".partition("@")
        slashed = _HF_SLASHED_REV.match(rev_and_path)
        if slashed is not None:
            rev, file = slashed.group(), rev_and_path[slashed.end() :].removeprefix("/")
        else:
            rev, _, file = rev_and_path.partition("/")
        rev = unquote(rev)
    else:  # this project's earlier form: <path>@<rev>, a revision without '/'
        file, at, rev = rest.rpartition("@")
        if not at or "/" in rev:
            file, rev = rest, "main"
    names = (org, repo, rev, *file.split("/"))
    if not all(names) or any(_UNSENDABLE.search(name) for name in names):
        return None
    return f"https://huggingface.co/{kind}{org}/{repo}/resolve/{quote(rev, safe='')}/{file}"


def _split(url: str) -> SplitResult | None:
    """`urlsplit(url)`, or None for a URL it refuses (an unclosed '[', say)."""
    try:
        return urlsplit(url)
    except ValueError:
        return None


def civitai_download_url(url: str) -> str | None:
    """The download URL of a CivitAI model version page, or None when the URL names no version."""
    parts = _split(url.strip())
    if parts is None or (parts.hostname or "").lower() not in _CIVITAI_HOSTS:
        return None
    if parts.path.startswith("/api/download/models/"):
        return urlunsplit(("https", "civitai.com", parts.path, parts.query, ""))
    version = dict(parse_qsl(parts.query)).get("modelVersionId", "")
    if _CIVITAI_MODEL.fullmatch(parts.path) and version.isascii() and version.isdigit():
        return f"https://civitai.com/api/download/models/{version}"
    return None


def civitai_model_id(url: str) -> str | None:
    """The model id of a CivitAI model page that names no version (its latest is then wanted)."""
    parts = _split(url.strip())
    match = _CIVITAI_MODEL.fullmatch(parts.path) if parts is not None else None
    if parts is None or (parts.hostname or "").lower() not in _CIVITAI_HOSTS or match is None:
        return None
    return None if "modelVersionId" in dict(parse_qsl(parts.query)) else match["id"]


def _hugging_face(parts: SplitResult) -> str:
    segments = parts.path.split("/")
    # /<org>/<repo>/blob/<rev>/<path...>, also /datasets/<org>/<repo>/blob/... and /spaces/...
    offset = 3 if segments[1:2] in (["datasets"], ["spaces"]) else 2
    if len(segments) > offset + 2 and segments[offset + 1] == "blob":
        segments[offset + 1] = "resolve"
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "download"]
    return urlunsplit(("https", "huggingface.co", "/".join(segments), urlencode(kept), ""))


def stable_weight_name(url: str) -> str:
    """The file name a weight fetched from `url` is stored under; see the module docstring. Raises
    ValueError for a URL `url_problem` refuses: check it first."""
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
    """A plain file name: no folder parts, no leading dot, only letters, digits, `_.+-`; may be empty.

    At most 120 UTF-8 bytes (letters of any script are kept, and a CJK letter is 3 bytes), cut without
    splitting a character and keeping a short extension, so it fits the filesystem's 255-byte limit."""
    name = unicodedata.normalize("NFC", raw.replace("\\", "/").rsplit("/", 1)[-1])
    name = _UNSAFE.sub("_", name).lstrip("._")
    if len(name.encode("utf-8")) > _MAX_NAME_BYTES:
        stem, dot, extension = name.rpartition(".")
        if dot and 0 < len(extension) <= 16:
            name = _utf8_prefix(stem, _MAX_NAME_BYTES - len(extension.encode("utf-8")) - 1) + "." + extension
        else:
            name = _utf8_prefix(name, _MAX_NAME_BYTES)
    return name


def _utf8_prefix(text: str, limit: int) -> str:
    """The longest prefix of `text` whose UTF-8 form has at most `limit` bytes."""
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")
