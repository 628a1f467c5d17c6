"""Every setting for running ComfyUI, read from the environment in this one place.

Settings are read when asked for (`RuntimeSettings.from_env()`), never at import, through the one reader
`weightkit.env.Env`, and returned as a frozen value. Where ComfyUI and the weights live (`COMFYUI_PATH`,
`WEIGHTS_DIR`) belong to `weightkit.settings.WeightSettings`, which this holds as `weights`.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from weightkit.env import Env
from weightkit.errors import SettingsError
from weightkit.settings import WeightSettings

__all__ = ["RuntimeSettings"]


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
    | `COMFYUI_INPUT_DIR` | `/tmp/inputs` | ComfyUI's `--input-directory` |
    | `COMFYUI_OUTPUT_DIR` | `/tmp/outputs` | `--output-directory`; where `/view` downloads land if attached |
    | `COMFYUI_TEMP_DIR` | `/tmp/comfyui` | `--temp-directory` (ComfyUI uses and wipes `temp/` inside) |
    | `COMFYUI_MODEL_PATHS_FILE` | `<COMFYUI_TEMP_DIR>/extra_model_paths.yaml` | written for ComfyUI |
    | `COMFYUI_LOG_PREFIX` | `[ComfyUI] ` | prefix of ComfyUI's forwarded log lines |
    """

    weights: WeightSettings = field(default_factory=WeightSettings)
    url: str | None = None
    port: int | None = None
    python: str = sys.executable
    extra_args: tuple[str, ...] = ()
    start_timeout: float = 300.0
    run_timeout: float | None = 3600.0
    input_dir: Path = Path("/tmp/inputs")
    output_dir: Path = Path("/tmp/outputs")
    temp_dir: Path = Path("/tmp/comfyui")
    model_paths_file: Path = Path("/tmp/comfyui/extra_model_paths.yaml")
    log_prefix: str = "[ComfyUI] "

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
        temp_dir = env.path("COMFYUI_TEMP_DIR", cls.temp_dir)
        return cls(
            weights=WeightSettings.from_env(env.environ),
            url=url,
            port=env.port("COMFYUI_PORT", cls.port),
            python=env.text("COMFYUI_PYTHON", cls.python),
            extra_args=tuple(shlex.split(env.raw("COMFYUI_ARGS"))),
            start_timeout=env.seconds("COMFYUI_START_TIMEOUT", cls.start_timeout),
            run_timeout=env.seconds_or_no_limit("COMFYUI_RUN_TIMEOUT", cls.run_timeout),
            input_dir=env.path("COMFYUI_INPUT_DIR", cls.input_dir),
            output_dir=env.path("COMFYUI_OUTPUT_DIR", cls.output_dir),
            temp_dir=temp_dir,
            model_paths_file=env.path("COMFYUI_MODEL_PATHS_FILE", temp_dir / "extra_model_paths.yaml"),
            log_prefix=env.verbatim("COMFYUI_LOG_PREFIX", cls.log_prefix),
        )
