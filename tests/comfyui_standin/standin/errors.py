"""Exceptions that ComfyUI reports under its libraries' names.

ComfyUI puts `module.qualname` of an exception's class into `execution_error.exception_type`, so a
client sees e.g. `safetensors._safetensors_rust.SafetensorError`. The stand-in does not use those
libraries, so its own classes carry the same module names: clients and tests can match on the same
strings against both servers.
"""

from __future__ import annotations


class SafetensorError(Exception):
    """A .safetensors file whose header is missing, too large, malformed or not covering the file."""


SafetensorError.__module__ = "safetensors._safetensors_rust"


class UnsupportedModelError(Exception):
    """A state dict that no known upscaler architecture matches (spandrel's error; its message is empty)."""


UnsupportedModelError.__module__ = "spandrel.__helpers.registry"


class InterruptProcessingException(Exception):
    """Raised inside a node when `POST /interrupt` asked the running prompt to stop."""


InterruptProcessingException.__module__ = "comfy.model_management"


def full_type_name(cls: type) -> str:
    """The name ComfyUI reports for an exception class: `qualname` for builtins, else `module.qualname`."""
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"
