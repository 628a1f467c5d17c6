"""The predictor's settings, read from the environment in this one place.

Read when asked for (`PredictorSettings.from_env()`), never at import, and returned as frozen values so
tests can build their own. ComfyUI's settings (`comfyrun.settings.RuntimeSettings`) and the weights'
(`weightkit.settings.WeightSettings`) are read by their own packages and held here.
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from comfyrun.settings import RuntimeSettings
from prediction.input_errors import ALLOW_PRIVATE_URLS
from weightkit.errors import SettingsError

__all__ = ["DEFAULT_WORKFLOW", "IPNetwork", "InputSettings", "PredictorSettings"]

DEFAULT_WORKFLOW = Path(__file__).resolve().parent.parent / "examples" / "sd15_txt2img.json"

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_TRUE = ("1", "true", "yes", "on", "all")
_FALSE = ("", "0", "false", "no", "off", "none")


@dataclass(frozen=True, kw_only=True)
class InputSettings:
    """Limits and permissions for fetching and unpacking what a prediction is given.

    | variable | default | meaning |
    | --- | --- | --- |
    | `ALLOW_PRIVATE_URLS` | (none) | networks URLs may reach besides the public internet (below) |
    | `INPUT_DOWNLOAD_MAX_BYTES` | `1073741824` (1 GiB) | largest file fetched for a URL inside a workflow |
    | `WORKFLOW_MAX_BYTES` | `33554432` (32 MiB) | largest workflow fetched for a `workflow_json` URL |
    | `INPUT_DOWNLOAD_TIMEOUT` | `30` | seconds to connect, and seconds any one read may wait for data |
    | `INPUT_ARCHIVE_MAX_FILES` | `10000` | most members an `input_file` archive may have |
    | `INPUT_ARCHIVE_MAX_BYTES` | `4294967296` (4 GiB) | most bytes an `input_file` archive may unpack to |

    `ALLOW_PRIVATE_URLS` is `true` (URLs may lead anywhere, cloud metadata hosts included), or a
    comma-separated list of networks such as `10.1.0.0/16,fd00::/8`, or empty/`false` (the default:
    only public internet addresses).
    """

    allow_private_urls: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()
    download_max_bytes: int = 1 << 30
    workflow_max_bytes: int = 32 << 20
    download_timeout: float = 30.0
    archive_max_files: int = 10_000
    archive_max_bytes: int = 4 << 30

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> InputSettings:
        """Read the variables in the table above; raises `SettingsError` naming a malformed one."""
        env = os.environ if environ is None else environ
        allow_all, networks = _allowed(env.get(ALLOW_PRIVATE_URLS, ""))
        return cls(
            allow_private_urls=allow_all,
            allowed_networks=networks,
            download_max_bytes=_positive_int(env, "INPUT_DOWNLOAD_MAX_BYTES", cls.download_max_bytes),
            workflow_max_bytes=_positive_int(env, "WORKFLOW_MAX_BYTES", cls.workflow_max_bytes),
            download_timeout=_seconds(env, "INPUT_DOWNLOAD_TIMEOUT", cls.download_timeout),
            archive_max_files=_positive_int(env, "INPUT_ARCHIVE_MAX_FILES", cls.archive_max_files),
            archive_max_bytes=_positive_int(env, "INPUT_ARCHIVE_MAX_BYTES", cls.archive_max_bytes),
        )


def _allowed(raw: str) -> tuple[bool, tuple[IPNetwork, ...]]:
    value = raw.strip()
    if value.lower() in _TRUE:
        return True, ()
    if value.lower() in _FALSE:
        return False, ()
    networks = []
    for part in value.split(","):
        try:
            networks.append(ipaddress.ip_network(part.strip(), strict=False))
        except ValueError as exc:
            raise SettingsError(
                ALLOW_PRIVATE_URLS, raw, "true, false, or comma-separated networks such as 10.1.0.0/16"
            ) from exc
    return False, tuple(networks)


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise SettingsError(name, raw, "a positive whole number of bytes")
    return value


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not math.isfinite(value) or value <= 0:
        raise SettingsError(name, raw, "a positive number of seconds")
    return value


@dataclass(frozen=True, kw_only=True)
class PredictorSettings:
    """What setup preloads and how predict treats missing weights.

    | variable | default | meaning |
    | --- | --- | --- |
    | `BASE_MODEL_KIT` | (none) | kit(s) to preload in setup, comma-separated (`python -m weightkit kits`) |
    | `PRELOAD_WORKFLOW` | (none) | workflow files or folders whose weights setup preloads, comma-separated |
    | `PRELOAD_WEIGHTS` | (none) | weight names (or `folder/name`) setup preloads, comma-separated |
    | `PRELOAD_BEST_EFFORT` | `false` | `true`: a failed preload is logged and setup goes on |
    | `WEIGHTS_STRICT` | `false` | `true`: predict never downloads; a missing weight fails at once |
    | `DEFAULT_WORKFLOW` | `examples/sd15_txt2img.json` | run when `workflow_json` is empty |
    """

    comfyui: RuntimeSettings = field(default_factory=RuntimeSettings)
    inputs: InputSettings = field(default_factory=InputSettings)
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
        env = os.environ if environ is None else environ
        return cls(
            comfyui=RuntimeSettings.from_env(env),
            inputs=InputSettings.from_env(env),
            kits=_list(env, "BASE_MODEL_KIT"),
            preload_workflows=tuple(Path(p) for p in _list(env, "PRELOAD_WORKFLOW")),
            preload_weights=_list(env, "PRELOAD_WEIGHTS"),
            preload_best_effort=_flag(env, "PRELOAD_BEST_EFFORT"),
            strict_weights=_flag(env, "WEIGHTS_STRICT"),
            default_workflow=Path(env.get("DEFAULT_WORKFLOW", "").strip() or DEFAULT_WORKFLOW),
        )


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in env.get(name, "").split(",") if part.strip())


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise SettingsError(name, raw, "true or false")
