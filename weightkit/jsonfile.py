"""Reading the project's own JSON documents (the manifest, a user manifest, the custom node lock).

A file that cannot be read, or is not JSON, raises the document's own error class, naming the file and
where the JSON broke, so each document's errors read the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["read_json_file"]


def read_json_file(path: Path, error: Callable[..., Exception]) -> Any:
    """The JSON value in `path`; raises `error(message, path=str(path))` when it cannot be read or parsed.
    A missing file raises that error too, chained to the `FileNotFoundError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"cannot read the file ({exc.strerror or exc})", path=str(path)) from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", path=str(path)
        ) from exc
