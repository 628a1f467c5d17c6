"""URLs: where a URL is requested (the configured endpoints), which credential an origin gets, how a URL
is shown to people, the mirror URL of a weight."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote, urlsplit

from weightkit.settings import Credential, DownloadSettings
from weightkit.urlforms import display_url

__all__ = [
    "credential_for",
    "display_url",
    "is_tar",
    "mirror_url",
    "on_hugging_face",
    "origin",
    "request_url",
]

HF_HOSTS = frozenset({"huggingface.co", "hf.co", "www.huggingface.co"})
CIVITAI_HOSTS = frozenset({"civitai.com", "www.civitai.com"})

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> str:
    """`scheme://host[:port]`, lowercased, the default port left out: what a credential is bound to."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def credential_for(url: str, credentials: Iterable[Credential]) -> Credential | None:
    """The credential whose origins include this URL's origin exactly; subdomains and redirect targets
    do not qualify, so a token never leaves the host it was issued for."""
    here = origin(url)
    for credential in credentials:
        if any(origin(allowed) == here for allowed in credential.origins):
            return credential
    return None


def is_tar(url: str) -> bool:
    """Whether a source serves a `.tar` archive holding the weight (as Replicate's weights CDN does)."""
    return urlsplit(url).path.lower().endswith(".tar")


def mirror_url(template: str, *, folder: str, name: str, sha256: str) -> str:
    """`template` with `{folder}`, `{name}` and `{sha256}` filled in, each percent-encoded."""
    return template.format(folder=quote(folder, safe=""), name=quote(name, safe="/"), sha256=sha256)


def on_hugging_face(url: str) -> bool:
    """A Hugging Face resolve URL: its host states the file's size and sha256 (`hostfacts.py`)."""
    parts = urlsplit(url)
    return parts.scheme == "https" and (parts.hostname or "") in HF_HOSTS and "/resolve/" in parts.path


def request_url(url: str, settings: DownloadSettings) -> str:
    """The URL actually requested for `url`: one on huggingface.co / hf.co goes to `WEIGHTS_HF_ENDPOINT`,
    one on civitai.com to `WEIGHTS_CIVITAI_ENDPOINT` (their path and query kept, after the endpoint's
    own path); any other, and any URL when the endpoints are the defaults, as it is."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        return url
    host = (parts.hostname or "").lower()
    endpoints = {
        **dict.fromkeys(HF_HOSTS, settings.hf_endpoint),
        **dict.fromkeys(CIVITAI_HOSTS, settings.civitai_endpoint),
    }
    endpoint = endpoints.get(host)
    if endpoint is None or parts.port not in (None, 443):
        return url
    base = endpoint.rstrip("/")
    if base == f"https://{host}":
        return url
    return base + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
