"""What running workflows needs from a weight store (`weightkit.store.WeightStore`), as a protocol: comfyrun
depends on the four methods it calls, not on weightkit's class."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from comfyrun.weightfaults import WeightRefLike

__all__ = ["WeightStore"]


class WeightStore(Protocol):
    """What `comfyui.ComfyUI` needs from `weightkit.store.WeightStore`."""

    def required(self, workflow: Mapping[str, Any]) -> Sequence[WeightRefLike]: ...

    def validate(self, workflow: Mapping[str, Any]) -> object: ...

    def repair(self, name: str, folder: str) -> Path: ...

    def write_extra_model_paths(self, path: Path) -> Path: ...
