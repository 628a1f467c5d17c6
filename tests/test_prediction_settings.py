"""InputSettings.from_env: documented defaults, each variable read, malformed values named."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest

from prediction.settings import InputSettings
from weightkit.errors import SettingsError
from weightkit.settings import DownloadSettings

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_when_nothing_is_set() -> None:
    settings = InputSettings.from_env({})
    assert settings == InputSettings()
    assert settings.allow_private_urls is False and settings.allowed_networks == ()
    assert settings.download_max_bytes == 1 << 30 and settings.workflow_max_bytes == 32 << 20
    assert settings.download_timeout == 30.0
    assert settings.archive_max_files == 10_000 and settings.archive_max_bytes == 4 << 30


def test_every_variable_read() -> None:
    settings = InputSettings.from_env(
        {
            "ALLOW_PRIVATE_URLS": "10.1.0.0/16, fd00::/8,192.168.1.7",
            "INPUT_DOWNLOAD_MAX_BYTES": "1_000",
            "WORKFLOW_MAX_BYTES": "2000",
            "INPUT_DOWNLOAD_TIMEOUT": "2.5",
            "INPUT_ARCHIVE_MAX_FILES": "7",
            "INPUT_ARCHIVE_MAX_BYTES": "9000",
        }
    )
    assert settings.allowed_networks == tuple(
        ipaddress.ip_network(n) for n in ("10.1.0.0/16", "fd00::/8", "192.168.1.7/32")
    )
    assert (settings.download_max_bytes, settings.workflow_max_bytes) == (1000, 2000)
    assert settings.download_timeout == 2.5
    assert (settings.archive_max_files, settings.archive_max_bytes) == (7, 9000)


@pytest.mark.parametrize(
    ("value", "allow_all"), [("true", True), ("1", True), ("ALL", True), ("false", False), ("", False)]
)
def test_allow_private_urls_switch(value: str, allow_all: bool) -> None:
    settings = InputSettings.from_env({"ALLOW_PRIVATE_URLS": value})
    assert settings.allow_private_urls is allow_all and settings.allowed_networks == ()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ALLOW_PRIVATE_URLS", "intranet"),
        ("ALLOW_PRIVATE_URLS", "10.0.0.0/8,"),
        ("INPUT_DOWNLOAD_MAX_BYTES", "1GB"),
        ("WORKFLOW_MAX_BYTES", "0"),
        ("INPUT_DOWNLOAD_TIMEOUT", "-1"),
        ("INPUT_DOWNLOAD_TIMEOUT", "nan"),
        ("INPUT_ARCHIVE_MAX_FILES", "many"),
    ],
)
def test_malformed_value_names_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable) as caught:
        InputSettings.from_env({variable: value})
    assert caught.value.variable == variable and caught.value.value == value


def test_the_rate_window_is_the_weights_setting() -> None:
    environ = {"WEIGHTS_MIN_RATE_WINDOW": "7"}
    assert (
        InputSettings.from_env(environ).min_rate_window
        == DownloadSettings.from_env(environ).min_rate_window
        == 7
    )


def test_no_variable_is_read_by_two_packages() -> None:
    reads = re.compile(
        r"""\b(?:env|environ)?\.?(?:get|raw|text|count|seconds|size|flag|items|path)\(\s*["']([A-Z][A-Z0-9_]+)["']"""
    )
    readers: dict[str, set[str]] = {}
    for package in ("weightkit", "nodekit", "comfyrun", "prediction"):
        for path in (ROOT / package).rglob("*.py"):
            for name in reads.findall(path.read_text(encoding="utf-8")):
                readers.setdefault(name, set()).add(package)
    assert {name: found for name, found in readers.items() if len(found) > 1} == {}
