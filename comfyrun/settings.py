"""Every setting for running ComfyUI, read from the environment in this one place.

Settings are read when asked for (`RuntimeSettings.from_env()`), never at import, through the one reader
`weightkit.env.Env`, and returned as a frozen value. Where ComfyUI and the weights live (`COMFYUI_PATH`,
`WEIGHTS_DIR`) belong to `weightkit.settings.WeightSettings`, which this holds as `weights`.
"""

from __future__ import annotations

import functools
import os
import secrets
import shlex
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from weightkit.env import Env
from weightkit.errors import SettingsError
from weightkit.settings import WeightSettings

__all__ = ["RuntimeSettings", "instance_dir"]


@functools.cache
def instance_dir() -> Path:
    """This process's own folder for ComfyUI's input, output and temp folders when none is configured, so
    two predictors on one host never empty each other's. Only a name: `comfyui.ComfyUI` creates it when it
    starts ComfyUI and removes it when it stops, or at exit."""
    return Path(tempfile.gettempdir()) / f"comfyui-{os.getpid()}-{secrets.token_hex(4)}"


@dataclass(frozen=True, kw_only=True)
class RuntimeSettings:
    """How to start (or reach) ComfyUI and how long to wait for it.

    | variable | default | meaning |
    | --- | --- | --- |
    | `COMFYUI_URL` | (none) | attach to this running ComfyUI (`http://host:port`) instead of starting one |
    | `COMFYUI_PORT` | a free port | port for the ComfyUI started here, on 127.0.0.1 |
    | `COMFYUI_PYTHON` | this Python | interpreter that runs ComfyUI's `main.py` |
    | `COMFYUI_ARGS` | (none) | extra ComfyUI flags, shell-quoted, e.g. `--cpu --preview-method auto` |
    | `COMFYUI_START_TIMEOUT` | `300` | seconds to wait for `/system_stats` to answer after starting |
    | `COMFYUI_RUN_TIMEOUT` | `3600` | seconds one workflow may run before it is interrupted; `0` = no limit |
    | `COMFYUI_INPUT_DIR` | `<own>/inputs` | ComfyUI's `--input-directory` |
    | `COMFYUI_OUTPUT_DIR` | `<own>/outputs` | `--output-directory`; `/view` downloads land here if attached |
    | `COMFYUI_TEMP_DIR` | `<own>/comfyui` | `--temp-directory` (ComfyUI uses and wipes `temp/` inside) |
    | `COMFYUI_MODEL_PATHS_FILE` | `<COMFYUI_TEMP_DIR>/extra_model_paths.yaml` | written for ComfyUI |
    | `COMFYUI_LOG_PREFIX` | `[ComfyUI] ` | prefix of ComfyUI's forwarded log lines |
    | `COMFYUI_RESTART_LIMIT` | `5` | restarts of a ComfyUI that died allowed within the window; `0` = none |
    | `COMFYUI_RESTART_WINDOW` | `600` | seconds over which restarts are counted |

    `<own>` is a folder of this process's own in the system temp folder (`TMPDIR`), such as
    `/tmp/comfyui-812-9f3a1c2e`, removed when ComfyUI stops; every prediction empties these folders, so two
    predictors must never share them. A ComfyUI that dies is started again after 1 s, 2 s, 4 s... (at most
    30 s); once it has died `COMFYUI_RESTART_LIMIT` times within `COMFYUI_RESTART_WINDOW` seconds it is left
    down and the predictor's healthcheck reports it unhealthy.
    """

    weights: WeightSettings = field(default_factory=WeightSettings)
    url: str | None = None
    port: int | None = None
    python: str = sys.executable
    extra_args: tuple[str, ...] = ()
    start_timeout: float = 300.0
    run_timeout: float | None = 3600.0
    input_dir: Path = field(default_factory=lambda: instance_dir() / "inputs")
    output_dir: Path = field(default_factory=lambda: instance_dir() / "outputs")
    temp_dir: Path = field(default_factory=lambda: instance_dir() / "comfyui")
    model_paths_file: Path = field(default_factory=lambda: instance_dir() / "comfyui/extra_model_paths.yaml")
    log_prefix: str = "[ComfyUI] "
    restart_limit: int = 5
    restart_window: float = 600.0

    @property
    def comfyui_path(self) -> Path:
        return self.weights.comfyui_path

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RuntimeSettings:
        """Read the variables in the table above; raises `SettingsError` naming a malformed one."""
        env = Env(environ)
        url = env.raw("COMFYUI_URL").rstrip("/") or None
        if url is not None and not url.startswith(("http://", "https://")):
            raise SettingsError("COMFYUI_URL", url, "a URL starting with http:// or https://")
        own = instance_dir()
        temp_dir = env.path("COMFYUI_TEMP_DIR", own / "comfyui")
        return cls(
            weights=WeightSettings.from_env(env.environ),
            url=url,
            port=env.port("COMFYUI_PORT", cls.port),
            python=env.text("COMFYUI_PYTHON", cls.python),
            extra_args=tuple(shlex.split(env.raw("COMFYUI_ARGS"))),
            start_timeout=env.seconds("COMFYUI_START_TIMEOUT", cls.start_timeout),
            run_timeout=env.seconds_or_no_limit("COMFYUI_RUN_TIMEOUT", cls.run_timeout),
            input_dir=env.path("COMFYUI_INPUT_DIR", own / "inputs"),
            output_dir=env.path("COMFYUI_OUTPUT_DIR", own / "outputs"),
            temp_dir=temp_dir,
            model_paths_file=env.path("COMFYUI_MODEL_PATHS_FILE", temp_dir / "extra_model_paths.yaml"),
            log_prefix=env.verbatim("COMFYUI_LOG_PREFIX", cls.log_prefix),
            restart_limit=env.count("COMFYUI_RESTART_LIMIT", cls.restart_limit, minimum=0),
            restart_window=env.seconds("COMFYUI_RESTART_WINDOW", cls.restart_window),
        )

    def own_folder(self) -> Path | None:
        """`instance_dir()` when one of the folders lies in it (it is then ours to create and remove)."""
        own = instance_dir()
        folders = (self.input_dir, self.output_dir, self.temp_dir, self.model_paths_file)
        return own if any(own in path.parents for path in folders) else None
