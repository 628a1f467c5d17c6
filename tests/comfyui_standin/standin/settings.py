"""The stand-in's own knobs (ComfyUI has none of these), read from the environment in one place.

`COMFYUI_STANDIN_STEP_DELAY` (default `0`): seconds each progress step of ImageUpscaleWithModel takes,
so a test can make a run slow enough to interrupt, time out or kill.
`COMFYUI_STANDIN_START_DELAY` (default `0`): seconds spent before listening, as real ComfyUI spends
importing torch and its nodes (5.2–5.7 s in the recordings), for the setup benchmark.
`COMFYUI_STANDIN_GC_DELAY` (default `0`): seconds the worker spends after each prompt before it takes the
next, as ComfyUI's `gc.collect()` and `soft_empty_cache()` take (at most every 10 s there) with models
loaded; a `POST /free` sent meanwhile then takes effect only after the next prompt, as in ComfyUI.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class StandinSettings:
    step_delay: float = 0.0
    start_delay: float = 0.0
    gc_delay: float = 0.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StandinSettings:
        """Raises ValueError naming the variable when a value is not a non-negative number."""
        env = os.environ if environ is None else environ
        return cls(
            step_delay=_seconds(env, "COMFYUI_STANDIN_STEP_DELAY"),
            start_delay=_seconds(env, "COMFYUI_STANDIN_START_DELAY"),
            gc_delay=_seconds(env, "COMFYUI_STANDIN_GC_DELAY"),
        )


def _seconds(env: Mapping[str, str], name: str) -> float:
    raw = env.get(name, "").strip() or "0"
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ValueError(f"{name} must be a number of seconds >= 0, got {raw!r}")
    return value
