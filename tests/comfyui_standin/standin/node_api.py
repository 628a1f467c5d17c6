"""What a node implementation is given besides its inputs, and what it gives back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image

from .folders import Folders

Preview = tuple[str, Image.Image, int | None]  # (format, image, max size), as ComfyUI's progress previews


@dataclass
class NodeContext:
    """What a running node may use besides its inputs."""

    folders: Folders
    unique_id: str
    disable_metadata: bool
    step_delay: float
    state: dict[str, Any]  # kept between prompts while the node id keeps its class (ComfyUI's object cache)
    progress: Callable[
        [int, int, Preview | None], None
    ]  # raises InterruptProcessingException when interrupted
    wait: Callable[[float], None]  # a sleep that an interrupt cuts short


@dataclass(frozen=True)
class NodeOutput:
    result: tuple[Any, ...] = ()
    ui: dict[str, list[Any]] | None = None
