"""A manifest entry for bytes a test serves: what most tests (and the image build's weight server) need."""

from __future__ import annotations

import hashlib
from typing import Any


def entry(name: str, folder: str, data: bytes, url: str, **fields: Any) -> dict[str, Any]:
    """The entry of `data` as `folder/name` from `url`: exact size and sha256, an MIT licence, not gated;
    `fields` replace or add fields."""
    body: dict[str, Any] = {
        "name": name,
        "folder": folder,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "urls": [url],
        "license": "mit",
        "non_commercial": False,
        "gated": False,
    }
    return body | fields
