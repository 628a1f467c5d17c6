"""The one environment reader: the same rules for every setting, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from comfyrun.settings import RuntimeSettings
from prediction.settings import InputSettings, PredictorSettings
from weightkit.env import Env
from weightkit.errors import SettingsError
from weightkit.settings import DownloadSettings


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "-1", "soon", "1e400"])
@pytest.mark.parametrize(
    ("variable", "read"),
    [
        ("COMFYUI_RUN_TIMEOUT", RuntimeSettings.from_env),
        ("COMFYUI_START_TIMEOUT", RuntimeSettings.from_env),
        ("WEIGHTS_STALL_TIMEOUT", DownloadSettings.from_env),
        ("WEIGHTS_LOCK_TIMEOUT", DownloadSettings.from_env),
        ("INPUT_DOWNLOAD_TIMEOUT", InputSettings.from_env),
    ],
)
def test_a_timeout_that_is_not_a_finite_positive_number_is_refused(variable, read, value):
    with pytest.raises(SettingsError, match=variable) as caught:
        read({variable: value})
    assert caught.value.variable == variable and caught.value.value == value


def test_zero_means_no_limit_only_where_documented():
    assert RuntimeSettings.from_env({"COMFYUI_RUN_TIMEOUT": "0"}).run_timeout is None
    with pytest.raises(SettingsError, match="COMFYUI_START_TIMEOUT"):
        RuntimeSettings.from_env({"COMFYUI_START_TIMEOUT": "0"})
    with pytest.raises(SettingsError, match="WEIGHTS_STALL_TIMEOUT"):
        DownloadSettings.from_env({"WEIGHTS_STALL_TIMEOUT": "0"})


def test_unset_and_blank_take_the_dataclass_default():
    for environ in ({}, {"COMFYUI_RUN_TIMEOUT": "  ", "WEIGHTS_RETRIES": "", "PRELOAD_BEST_EFFORT": " "}):
        assert PredictorSettings.from_env(environ) == PredictorSettings()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("TRUE", True), (" yes ", True), ("on", True), ("0", False), ("no", False)],
)
def test_flags(raw, expected):
    assert Env({"F": raw}).flag("F") is expected


def test_a_flag_that_is_neither_is_refused():
    with pytest.raises(SettingsError, match="WEIGHTS_STRICT='maybe'"):
        PredictorSettings.from_env({"WEIGHTS_STRICT": "maybe"})


def test_counts_sizes_lists_paths():
    env = Env({"N": "1_000", "Z": "0", "S": "16M", "L": " a, ,b ,", "P": " /x/y "})
    assert env.count("N", 5) == 1000 and env.count("Z", 5, minimum=0) == 0
    assert env.size("S", 0) == 16 << 20
    assert env.items("L") == ("a", "b") and env.items("unset") == ()
    assert env.path("P", Path("d")) == Path("/x/y") and env.optional_path("unset") is None
    with pytest.raises(SettingsError, match="at least 1"):
        env.count("Z", 5)
    with pytest.raises(SettingsError, match="byte count"):
        Env({"S": "1.5G"}).size("S", 0)


def test_the_log_prefix_is_taken_verbatim():
    assert RuntimeSettings.from_env({"COMFYUI_LOG_PREFIX": "comfy> "}).log_prefix == "comfy> "
