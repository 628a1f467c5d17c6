"""The stand-in's own knobs (ComfyUI has none of these), read from the environment in one place.

`COMFYUI_STANDIN_STEP_DELAY` (default `0`): seconds each progress step of ImageUpscaleWithModel takes,
so a test can make a run slow enough to interrupt, time out or kill.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class StandinSettings:
    step_delay: float = 0.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StandinSettings:
        """Raises ValueError naming the variable when a value is not a non-negative number."""
        env = os.environ if environ is None else environ
        raw = env.get("COMFYUI_STANDIN_STEP_DELAY", "").strip() or "0"
        try:
            delay = float(raw)
        except ValueError:
            delay = -1.0
        if not delay >= 0:
            raise ValueError(f"COMFYUI_STANDIN_STEP_DELAY must be a number of seconds >= 0, got {raw!r}")
        return cls(step_delay=delay)
