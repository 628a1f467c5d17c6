"""Recognise an upscaler from its state dict, as spandrel does for ComfyUI's UpscaleModelLoader.

Only the two architectures most upscalers use are known: RealESRGAN Compact (SRVGGNetCompact) and
ESRGAN/RRDBNet (old, new and BSRGAN key layouts). Anything else raises spandrel's
UnsupportedModelError, which is what ComfyUI reports for a state dict that is not an upscaler.
The scale is read from the weights the way spandrel reads it; the stand-in then resizes with Pillow.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .errors import UnsupportedModelError
from .weightfiles import StateDict

_SWIN_PREFIXED_KEY = "module.layers.0.residual_group.blocks.0.norm1.weight"


@dataclass(frozen=True)
class UpscaleModel:
    """What UpscaleModelLoader outputs: the architecture, its scale and the file it came from."""

    architecture: str
    scale: int
    path: str

    def __str__(self) -> str:
        return f"<{self.architecture} x{self.scale} upscale model from {self.path}>"


def detect_upscaler(state: StateDict, path: str) -> UpscaleModel:
    """The upscaler the state dict describes; raises UnsupportedModelError if it describes none."""
    if _SWIN_PREFIXED_KEY in state:
        state = {k.removeprefix("module."): v for k, v in state.items()}
    if {"body.0.weight", "body.1.weight"} <= state.keys():
        return UpscaleModel("Compact", _compact_scale(state), path)
    if _is_esrgan(state):
        return UpscaleModel("ESRGAN", _esrgan_scale(state), path)
    raise UnsupportedModelError()


def _seq_len(state: StateDict, prefix: str) -> int:
    """1 + the highest N among keys `prefix.N.*` (spandrel's get_seq_len)."""
    numbers = [int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"\.(\d+)\.", k))]
    return max(numbers, default=-1) + 1


def _compact_scale(state: StateDict) -> int:
    last = _seq_len(state, "body") - 1
    in_channels = state["body.0.weight"].shape[1]
    shuffled = state[f"body.{last}.bias"].shape[0]
    for channels in (in_channels, 3, 4, 1):
        root = math.isqrt(shuffled // channels) if shuffled % channels == 0 else 0
        if root and root * root * channels == shuffled:
            return root
    raise UnsupportedModelError()


def _is_esrgan(state: StateDict) -> bool:
    layouts = (
        {"model.0.weight", "model.1.sub.0.RDB1.conv1.0.weight"},
        {"conv_first.weight", "body.0.rdb1.conv1.weight", "conv_body.weight", "conv_last.weight"},
        {"conv_first.weight", "RRDB_trunk.0.RDB1.conv1.weight", "trunk_conv.weight", "conv_last.weight"},
        {"model.0.weight", "model.1.sub.0.RDB1.conv1x1.weight"},
    )
    return any(layout <= state.keys() for layout in layouts)


def _esrgan_scale(state: StateDict) -> int:
    if (
        "model.0.weight" in state
    ):  # old layout: conv, trunk, [upsample, conv, act] * log2(scale), conv, act, conv
        scale = 2 ** ((_seq_len(state, "model") - 5) // 3)
        in_channels = state["model.0.weight"].shape[1]
    else:  # new layouts: one upconvN per doubling
        ups = {m.group(2) for k in state if (m := re.match(r"(upconv|conv_up)(\d)\.weight", k))}
        scale = 2 ** len(ups)
        in_channels = state["conv_first.weight"].shape[1]
    if in_channels in (12, 48):  # pixel-unshuffled input (Real-ESRGAN x2 / x1)
        scale //= math.isqrt(in_channels // 3)
    return max(scale, 1)
