"""Settings for the predictor's inputs, read from the environment in this one place.

Read when asked for (`InputSettings.from_env()`), never at import, and returned as a frozen value so
tests can build their own.
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

from prediction.input_errors import ALLOW_PRIVATE_URLS, InputSettingError

__all__ = ["IPNetwork", "InputSettings"]

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
        """Read the variables in the table above; raises `InputSettingError` naming a malformed one."""
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
            raise InputSettingError(
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
        raise InputSettingError(name, raw, "a positive whole number of bytes")
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
        raise InputSettingError(name, raw, "a positive number of seconds")
    return value
