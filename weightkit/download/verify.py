"""Checks that a downloaded file is what was asked for: size, sha256, and a safetensors header.

The header check catches what a hash cannot when no hash is known (a URL given by a user): an HTML
login page or a truncated file saved under a `.safetensors` name.
"""

from __future__ import annotations

import json
import os

__all__ = ["MAX_HEADER", "is_safetensors", "mismatch", "safetensors_problem"]

MAX_HEADER = 100 << 20  # the safetensors format's own limit on its JSON header


def is_safetensors(name: str) -> bool:
    return name.lower().endswith((".safetensors", ".sft"))


def mismatch(
    *, expected_size: int | None, size: int, expected_sha256: str | None, sha256: str | None
) -> str | None:
    """Why the bytes are not the file asked for, or None when they are."""
    if expected_size is not None and size != expected_size:
        return f"size mismatch: expected {expected_size} bytes, got {size}"
    if expected_sha256 is not None and sha256 != expected_sha256:
        return f"sha256 mismatch: expected {expected_sha256}, got {sha256} ({size} bytes)"
    return None


def safetensors_problem(fd: int, size: int) -> str | None:
    """What is wrong with the safetensors layout of the open file `fd` of `size` bytes, or None.

    The file is an 8-byte little-endian header length, a JSON object, then tensor data; every tensor's
    `data_offsets` must lie in the data, and together they must reach its end.
    """
    if size < 8:
        return f"not a safetensors file: {size} bytes is shorter than its 8-byte header length"
    length = int.from_bytes(os.pread(fd, 8, 0), "little")
    if length > min(MAX_HEADER, size - 8):
        return f"not a safetensors file: header length {length} does not fit in {size} bytes"
    raw = os.pread(fd, length, 8)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return "not a safetensors file: its header is not JSON"
    if not isinstance(header, dict):
        return "not a safetensors file: its header is not a JSON object"
    data = size - 8 - length
    reach = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(v, int) for v in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data
        ):
            return f"safetensors tensor {name!r} has data_offsets {offsets!r} outside its {data} data bytes"
        reach = max(reach, offsets[1])
    if reach != data:
        return f"safetensors tensors cover {reach} of {data} data bytes (truncated or padded file)"
    return None
