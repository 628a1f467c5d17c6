"""Every weightkit setting, read from the environment in this one place.

Settings are read when asked for (`WeightSettings.from_env()`), never at import, through the one reader
`weightkit.env.Env`, and returned as a frozen value so a caller can pass them around and tests can build
their own.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from weightkit.env import Env
from weightkit.errors import SettingsError

BUILTIN_MANIFEST = Path(__file__).resolve().parent.parent / "weights_manifest.json"


@dataclass(frozen=True, kw_only=True)
class Credential:
    """A token sent as `Authorization: Bearer` to its own origins only, never to a host redirected to.

    `origins` are `scheme://host[:port]`; `env_var` is what an error tells the user to set.
    """

    env_var: str
    origins: tuple[str, ...]
    token: str | None = field(default=None, repr=False)


HF_ORIGINS = ("https://huggingface.co", "https://hf.co")
CIVITAI_ORIGINS = ("https://civitai.com",)
HF_ENDPOINT = "https://huggingface.co"
CIVITAI_ENDPOINT = "https://civitai.com"


@dataclass(frozen=True, kw_only=True)
class DownloadSettings:
    """How weights are downloaded. Defaults come from `python -m bench download` (see docs/DOWNLOAD.md).

    | variable | default | meaning |
    | --- | --- | --- |
    | `WEIGHTS_CONNECTIONS_PER_FILE` | 32 | most parallel range requests for one file (2 to start) |
    | `WEIGHTS_MAX_CONNECTIONS` | 64 | connection budget shared by every file downloading at once |
    | `WEIGHTS_CONCURRENT_FILES` | 4 | files of a kit downloaded at the same time |
    | `WEIGHTS_CHUNK_SIZE` | 16M | bytes per range request (suffixes K, M, G: powers of 1024) |
    | `WEIGHTS_STALL_TIMEOUT` | 30 | seconds without a byte before a connection is given up |
    | `WEIGHTS_MIN_RATE` | 32K | bytes per second a connection must bring over each window (0: no floor) |
    | `WEIGHTS_MIN_RATE_WINDOW` | 30 | seconds of that window; a connection below the floor is replaced |
    | `WEIGHTS_RETRIES` | 5 | retries of one chunk before moving to the next source |
    | `WEIGHTS_BACKOFF` | 0.5 | first retry delay in seconds; doubles each retry, with jitter |
    | `WEIGHTS_BACKOFF_MAX` | 30 | longest retry delay in seconds |
    | `WEIGHTS_MAX_RETRY_AFTER` | 120 | longest `Retry-After` honoured; longer: next source |
    | `WEIGHTS_MIRROR` | (none) | URL template tried first: `http://cache.internal/weights/{folder}/{name}` |
    | `HF_TOKEN` (or `HUGGING_FACE_HUB_TOKEN`) | (none) | token for Hugging Face (its endpoint) only |
    | `CIVITAI_API_TOKEN` | (none) | token for CivitAI (its endpoint) only |
    | `WEIGHTS_HF_ENDPOINT` | `https://huggingface.co` | where huggingface.co / hf.co URLs are asked |
    | `WEIGHTS_CIVITAI_ENDPOINT` | `https://civitai.com` | where civitai.com URLs (API, downloads) are asked |
    | `WEIGHTS_LOCK_TIMEOUT` | 120 | seconds to wait while another process's download brings no bytes |
    | `WEIGHTS_MIN_FREE_BYTES` | 512M | free space to leave on the volume after a download |
    | `WEIGHTS_PROGRESS_INTERVAL` | 5 | seconds between progress log lines per file |
    | `WEIGHTS_ARCHIVE_MAX_FILES` | 10000 | most members of a `.tar` weight source or of Cog's `weights` tar |
    | `WEIGHTS_ARCHIVE_MAX_BYTES` | 64G | most bytes such an archive may unpack to |

    The mirror template may use `{folder}`, `{name}` and `{sha256}`; it is used only for weights with a
    known sha256, since only those can be checked (a weight whose manifest entry leaves its hash to
    Hugging Face gets it from the host's answer first). The endpoints replace the scheme and host of
    URLs on huggingface.co / hf.co and civitai.com, keeping their path (an endpoint may carry a path
    prefix); each token goes to its endpoint's origin only, never to a host it redirects to.
    `WEIGHTS_HF_ENDPOINT` is not `HF_ENDPOINT`, a name Cog refuses. A connection below
    `WEIGHTS_MIN_RATE` counts as a failed attempt: it is retried on a new connection, and a source that
    stays below the floor for `WEIGHTS_RETRIES` attempts in a row is left for the next one.
    """

    connections_per_file: int = 32
    max_connections: int = 64
    concurrent_files: int = 4
    chunk_size: int = 16 << 20
    stall_timeout: float = 30.0
    min_rate: int = 32 << 10
    min_rate_window: float = 30.0
    retries: int = 5
    backoff: float = 0.5
    backoff_max: float = 30.0
    max_retry_after: float = 120.0
    mirror: str | None = None
    hf_endpoint: str = HF_ENDPOINT
    civitai_endpoint: str = CIVITAI_ENDPOINT
    credentials: tuple[Credential, ...] = (
        Credential(env_var="HF_TOKEN", origins=HF_ORIGINS),
        Credential(env_var="CIVITAI_API_TOKEN", origins=CIVITAI_ORIGINS),
    )
    lock_timeout: float = 120.0
    min_free_bytes: int = 512 << 20
    progress_interval: float = 5.0
    archive_max_files: int = 10_000
    archive_max_bytes: int = 64 << 30

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DownloadSettings:
        """Raises `SettingsError` naming the variable whose value is unusable."""
        env = Env(environ)
        mirror = env.optional_text("WEIGHTS_MIRROR")
        if mirror is not None and not _mirror_template_ok(mirror):
            expected = "a URL template containing {name}, using only the fields {folder}, {name} and {sha256}"
            raise SettingsError("WEIGHTS_MIRROR", mirror, expected + " (write a literal brace as {{ or }})")
        hf_token = env.optional_text("HF_TOKEN") or env.optional_text("HUGGING_FACE_HUB_TOKEN")
        hf_endpoint = _endpoint(env, "WEIGHTS_HF_ENDPOINT", cls.hf_endpoint)
        civitai_endpoint = _endpoint(env, "WEIGHTS_CIVITAI_ENDPOINT", cls.civitai_endpoint)
        return cls(
            connections_per_file=env.count("WEIGHTS_CONNECTIONS_PER_FILE", cls.connections_per_file),
            max_connections=env.count("WEIGHTS_MAX_CONNECTIONS", cls.max_connections),
            concurrent_files=env.count("WEIGHTS_CONCURRENT_FILES", cls.concurrent_files),
            chunk_size=env.size("WEIGHTS_CHUNK_SIZE", cls.chunk_size, minimum=64 << 10),
            stall_timeout=env.seconds("WEIGHTS_STALL_TIMEOUT", cls.stall_timeout),
            min_rate=env.size("WEIGHTS_MIN_RATE", cls.min_rate),
            min_rate_window=env.seconds("WEIGHTS_MIN_RATE_WINDOW", cls.min_rate_window),
            retries=env.count("WEIGHTS_RETRIES", cls.retries, minimum=0),
            backoff=env.seconds("WEIGHTS_BACKOFF", cls.backoff),
            backoff_max=env.seconds("WEIGHTS_BACKOFF_MAX", cls.backoff_max),
            max_retry_after=env.seconds("WEIGHTS_MAX_RETRY_AFTER", cls.max_retry_after),
            mirror=mirror,
            hf_endpoint=hf_endpoint,
            civitai_endpoint=civitai_endpoint,
            credentials=(
                Credential(env_var="HF_TOKEN", origins=_origins(hf_endpoint, HF_ORIGINS), token=hf_token),
                Credential(
                    env_var="CIVITAI_API_TOKEN",
                    origins=_origins(civitai_endpoint, CIVITAI_ORIGINS),
                    token=env.optional_text("CIVITAI_API_TOKEN"),
                ),
            ),
            lock_timeout=env.seconds("WEIGHTS_LOCK_TIMEOUT", cls.lock_timeout),
            min_free_bytes=env.size("WEIGHTS_MIN_FREE_BYTES", cls.min_free_bytes),
            progress_interval=env.seconds("WEIGHTS_PROGRESS_INTERVAL", cls.progress_interval),
            archive_max_files=env.count("WEIGHTS_ARCHIVE_MAX_FILES", cls.archive_max_files),
            archive_max_bytes=env.size("WEIGHTS_ARCHIVE_MAX_BYTES", cls.archive_max_bytes, minimum=1),
        )


def _mirror_template_ok(template: str) -> bool:
    """Whether `str.format` fills `template` with just folder, name and sha256 (and it has `{name}`):
    checked here, so a bad template fails at start and not at every fetch."""
    try:
        fields = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(template) if f is not None]
    except ValueError:  # a lone "{" or "}"
        return False
    names = {f for f, _, _ in fields}
    plain = all(not spec and conv is None for _, spec, conv in fields)
    return plain and "name" in names and names <= {"folder", "name", "sha256"}


def _endpoint(env: Env, name: str, default: str) -> str:
    """An http(s) base URL without query or fragment, its trailing `/` removed."""
    raw = env.optional_text(name)
    if raw is None:
        return default
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise SettingsError(
            name, raw, "an http(s) URL such as https://hf-mirror.internal (a path may follow)"
        )
    return raw.rstrip("/")


def _origins(endpoint: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """The origins a token goes to: its host's own, or the endpoint's when one replaces it."""
    if endpoint in default:
        return default
    parts = urlsplit(endpoint)
    return (f"{parts.scheme}://{parts.netloc.rpartition('@')[2].lower()}",)


@dataclass(frozen=True, kw_only=True)
class WeightSettings:
    """Where weights live and where their descriptions come from.

    | variable | default | meaning |
    | --- | --- | --- |
    | `COMFYUI_PATH` | `ComfyUI` | ComfyUI checkout; its `models/` folders are searched |
    | `WEIGHTS_DIR` | `weights` | the project's own weights folder; downloads land here |
    | `EXTRA_MODEL_PATHS_CONFIG` | (none) | an `extra_model_paths.yaml` to search as ComfyUI would |
    | `WEIGHTS_MANIFEST_EXTRA` | (none) | a manifest merged over the built-in one |

    Download settings (`download`) are listed on `DownloadSettings`.
    """

    comfyui_path: Path = Path("ComfyUI")
    weights_dir: Path = Path("weights")
    extra_model_paths: Path | None = None
    manifest_path: Path = BUILTIN_MANIFEST
    manifest_extra: Path | None = None
    download: DownloadSettings = field(default_factory=DownloadSettings)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WeightSettings:
        """Raises `SettingsError` naming the variable whose value is unusable."""
        env = Env(environ)
        return cls(
            comfyui_path=env.path("COMFYUI_PATH", cls.comfyui_path),
            weights_dir=env.path("WEIGHTS_DIR", cls.weights_dir),
            extra_model_paths=env.optional_path("EXTRA_MODEL_PATHS_CONFIG"),
            manifest_extra=env.optional_path("WEIGHTS_MANIFEST_EXTRA"),
            download=DownloadSettings.from_env(env.environ),
        )
