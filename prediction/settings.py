"""The predictor's settings, read from the environment in this one place.

Read when asked for (`PredictorSettings.from_env()`), never at import, and returned as frozen values so
tests can build their own. ComfyUI's settings (`comfyrun.settings.RuntimeSettings`) and the weights'
(`weightkit.settings.WeightSettings`) are read by their own packages and held here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from comfyrun.settings import RuntimeSettings
from nodekit.settings import NodeSettings
from prediction.input_errors import ALLOW_PRIVATE_URLS
from weightkit.env import FALSE, TRUE, Env
from weightkit.errors import SettingsError
from weightkit.settings import DownloadSettings

__all__ = ["DEFAULT_WORKFLOW", "IPNetwork", "InputSettings", "PredictorSettings"]

DEFAULT_WORKFLOW = Path(__file__).resolve().parent.parent / "examples" / "sd15_txt2img.json"

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, kw_only=True)
class InputSettings:
    """Limits and permissions for fetching and unpacking what a prediction is given.

    | variable | default | meaning |
    | --- | --- | --- |
    | `ALLOW_PRIVATE_URLS` | (none) | networks URLs may reach besides the public internet (below) |
    | `INPUT_DOWNLOAD_MAX_BYTES` | `1073741824` (1 GiB) | largest file fetched for a URL inside a workflow |
    | `WORKFLOW_MAX_BYTES` | `33554432` (32 MiB) | largest workflow fetched for a `workflow_json` URL |
    | `INPUT_DOWNLOAD_TIMEOUT` | `30` | seconds to connect, and seconds any one read may wait for data |
    | `INPUT_DOWNLOAD_DEADLINE` | `600` | seconds one URL input (or workflow URL) may take in all |
    | `INPUT_DOWNLOAD_MIN_RATE` | `32K` | least bytes/s of a URL input in each `WEIGHTS_MIN_RATE_WINDOW` |
    | `INPUT_URLS_GET_TOKENS` | `false` | `true`: weight URLs in workflows get the tokens (see below) |
    | `INPUT_ARCHIVE_MAX_FILES` | `10000` | most members an `input_file` archive may have |
    | `INPUT_ARCHIVE_MAX_BYTES` | `4294967296` (4 GiB) | most bytes an `input_file` archive may unpack to |

    `ALLOW_PRIVATE_URLS` is `true` (URLs may lead anywhere, cloud metadata hosts included), or a
    comma-separated list of networks such as `10.1.0.0/16,fd00::/8`, or empty/`false` (the default:
    only public internet addresses). A list never opens a cloud metadata address, even one inside a listed
    network (`fd00:ec2::254` is in `fd00::/8`): only `true` does.

    `INPUT_URLS_GET_TOKENS=true` lets the operator's tokens go to huggingface.co and civitai.com for
    weights a workflow gives by URL: any caller can then download the private and gated files those tokens
    can read. Off, a gated file given by URL fails as gated; the manifest's weights and `PRELOAD_WEIGHTS`
    URLs still get the tokens.
    """

    allow_private_urls: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()
    download_max_bytes: int = 1 << 30
    workflow_max_bytes: int = 32 << 20
    download_timeout: float = 30.0
    download_deadline: float = 600.0
    download_min_rate: int = 32 << 10
    min_rate_window: float = 30.0
    tokens_for_urls: bool = False
    archive_max_files: int = 10_000
    archive_max_bytes: int = 4 << 30

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> InputSettings:
        """Read the variables in the table above; raises `SettingsError` naming a malformed one."""
        env = Env(environ)
        allow_all, networks = _allowed(env.raw(ALLOW_PRIVATE_URLS))
        return cls(
            allow_private_urls=allow_all,
            allowed_networks=networks,
            download_max_bytes=env.count("INPUT_DOWNLOAD_MAX_BYTES", cls.download_max_bytes),
            workflow_max_bytes=env.count("WORKFLOW_MAX_BYTES", cls.workflow_max_bytes),
            download_timeout=env.seconds("INPUT_DOWNLOAD_TIMEOUT", cls.download_timeout),
            download_deadline=env.seconds("INPUT_DOWNLOAD_DEADLINE", cls.download_deadline),
            download_min_rate=env.size("INPUT_DOWNLOAD_MIN_RATE", cls.download_min_rate),
            min_rate_window=DownloadSettings.from_env(env.environ).min_rate_window,  # the weights' own
            tokens_for_urls=env.flag("INPUT_URLS_GET_TOKENS", cls.tokens_for_urls),
            archive_max_files=env.count("INPUT_ARCHIVE_MAX_FILES", cls.archive_max_files),
            archive_max_bytes=env.count("INPUT_ARCHIVE_MAX_BYTES", cls.archive_max_bytes),
        )


def _allowed(value: str) -> tuple[bool, tuple[IPNetwork, ...]]:
    if value.lower() in (*TRUE, "all"):
        return True, ()
    if value.lower() in (*FALSE, "none"):
        return False, ()
    networks = []
    for part in value.split(","):
        try:
            networks.append(ipaddress.ip_network(part.strip(), strict=False))
        except ValueError as exc:
            raise SettingsError(
                ALLOW_PRIVATE_URLS, value, "true, false, or comma-separated networks such as 10.1.0.0/16"
            ) from exc
    return False, tuple(networks)


@dataclass(frozen=True, kw_only=True)
class PredictorSettings:
    """What setup preloads and how predict treats missing weights.

    | variable | default | meaning |
    | --- | --- | --- |
    | `BASE_MODEL_KIT` | (none) | kit(s) to preload in setup, comma-separated (`python -m weightkit kits`) |
    | `PRELOAD_WORKFLOW` | (none) | workflow files or folders whose weights setup preloads, comma-separated |
    | `PRELOAD_WEIGHTS` | (none) | weights to preload: `name`, `folder/name`, a listed URL, `folder=URL` |
    | `PRELOAD_BEST_EFFORT` | `false` | `true`: a failed preload is logged and setup goes on |
    | `WEIGHTS_STRICT` | `false` | `true`: predict never downloads; a missing weight fails at once |
    | `DEFAULT_WORKFLOW` | `examples/sd15_txt2img.json` | run when `workflow_json` is empty |
    """

    comfyui: RuntimeSettings = field(default_factory=RuntimeSettings)
    inputs: InputSettings = field(default_factory=InputSettings)
    nodes: NodeSettings = field(default_factory=NodeSettings)
    kits: tuple[str, ...] = ()
    preload_workflows: tuple[Path, ...] = ()
    preload_weights: tuple[str, ...] = ()
    preload_best_effort: bool = False
    strict_weights: bool = False
    default_workflow: Path = DEFAULT_WORKFLOW

    @property
    def returned_dir(self) -> Path:
        """Where the files a prediction returns are written (emptied at the next prediction)."""
        return self.comfyui.temp_dir / "returned"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PredictorSettings:
        """Read the variables above (and ComfyUI's, the weights' and the inputs'); raises `SettingsError`
        naming a malformed one."""
        env = Env(environ)
        return cls(
            comfyui=RuntimeSettings.from_env(env.environ),
            inputs=InputSettings.from_env(env.environ),
            nodes=NodeSettings.from_env(env.environ),
            kits=env.items("BASE_MODEL_KIT"),
            preload_workflows=tuple(Path(p) for p in env.items("PRELOAD_WORKFLOW")),
            preload_weights=env.items("PRELOAD_WEIGHTS"),
            preload_best_effort=env.flag("PRELOAD_BEST_EFFORT"),
            strict_weights=env.flag("WEIGHTS_STRICT"),
            default_workflow=env.path("DEFAULT_WORKFLOW", cls.default_workflow),
        )
