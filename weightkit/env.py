"""Reading settings from environment variables: one set of rules for every package.

Each settings class (`WeightSettings`, `RuntimeSettings`, `PredictorSettings`, ...) builds itself in
`from_env` through an `Env`, passing its own dataclass defaults, so a variable that is unset or blank
takes the documented default and a malformed one raises `SettingsError` naming the variable, its value
and what was expected. The rules, the same everywhere:

- counts are whole numbers (`1_000` allowed) of at least a minimum;
- sizes are byte counts with optional K, M, G, T suffixes (powers of 1024): `16M`, `1G`, `512MiB`;
- seconds are finite numbers above zero; where a setting documents it, `0` means "no limit" (read as
  None). `nan`, `inf` and negative values are always refused;
- flags are true/false (`1`, `yes`, `on` / `0`, `no`, `off`, empty);
- lists are comma-separated, blanks dropped;
- paths are taken as given; text is stripped of surrounding blanks.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path

from weightkit.errors import SettingsError

__all__ = ["FALSE", "TRUE", "Env", "parse_size"]

TRUE = ("1", "true", "yes", "on")
FALSE = ("", "0", "false", "no", "off")

_SIZE = re.compile(r"(\d[\d_]*)\s*([KMGT]?)(?:i?B)?", re.IGNORECASE)


def parse_size(text: str) -> int | None:
    """`16M` → 16 MiB; a plain number is bytes. None when `text` is not a size."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        return None
    return int(match.group(1)) << (10 * " KMGT".index(match.group(2).upper() or " "))


class Env:
    """Typed reads of one environment (`os.environ` unless given), each with the caller's default."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ

    def raw(self, name: str) -> str:
        """The value stripped of surrounding blanks; empty when unset."""
        return self.environ.get(name, "").strip()

    def text(self, name: str, default: str) -> str:
        return self.raw(name) or default

    def optional_text(self, name: str) -> str | None:
        return self.raw(name) or None

    def verbatim(self, name: str, default: str) -> str:
        """The value exactly as set (a prefix may end in a blank); `default` only when unset."""
        return self.environ.get(name, default)

    def count(self, name: str, default: int, *, minimum: int = 1) -> int:
        raw = self.raw(name)
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise SettingsError(name, raw, f"a whole number of at least {minimum}")
        return value

    def size(self, name: str, default: int, *, minimum: int = 0) -> int:
        raw = self.raw(name)
        if not raw:
            return default
        value = parse_size(raw)
        if value is None or value < minimum:
            raise SettingsError(name, raw, f"a byte count of at least {minimum}, such as 16M or 1G")
        return value

    def seconds(self, name: str, default: float) -> float:
        """A finite number of seconds above zero."""
        raw = self.raw(name)
        if not raw:
            return default
        value = _number(raw)
        if value is None or value <= 0:
            raise SettingsError(name, raw, "a positive number of seconds")
        return value

    def seconds_or_no_limit(self, name: str, default: float | None) -> float | None:
        """A finite number of seconds above zero, or `0` for no limit (None)."""
        raw = self.raw(name)
        if not raw:
            return default
        value = _number(raw)
        if value is None or value < 0:
            raise SettingsError(name, raw, "a positive number of seconds, or 0 for no limit")
        return value or None

    def flag(self, name: str, default: bool = False) -> bool:
        raw = self.raw(name)
        if not raw:
            return default
        if raw.lower() in TRUE:
            return True
        if raw.lower() in FALSE:
            return False
        raise SettingsError(name, raw, "true or false")

    def items(self, name: str) -> tuple[str, ...]:
        return tuple(part.strip() for part in self.raw(name).split(",") if part.strip())

    def path(self, name: str, default: Path) -> Path:
        raw = self.raw(name)
        return Path(raw) if raw else default

    def optional_path(self, name: str) -> Path | None:
        raw = self.raw(name)
        return Path(raw) if raw else None

    def port(self, name: str, default: int | None) -> int | None:
        raw = self.raw(name)
        if not raw:
            return default
        if not (raw.isdigit() and 0 < int(raw) < 65536):
            raise SettingsError(name, raw, "a port number (1-65535)")
        return int(raw)


def _number(raw: str) -> float | None:
    """A finite float, or None for anything else (`nan`, `inf`, words)."""
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
