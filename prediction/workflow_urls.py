"""Find the inputs of an API workflow whose value is an http(s) URL."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["URLValue", "is_url", "url_values"]

_URL = re.compile(r"https?://\S+", re.IGNORECASE)


@dataclass(frozen=True)
class URLValue:
    """One node input holding a URL (surrounding blanks removed)."""

    node_id: str
    class_type: str
    input_name: str
    url: str


def is_url(value: object) -> bool:
    """A string that is, apart from surrounding blanks, one http(s) URL (no blanks inside)."""
    return isinstance(value, str) and _URL.fullmatch(value.strip()) is not None


def url_values(workflow: Mapping[str, Any]) -> Iterator[URLValue]:
    """Every input of `workflow` (a parsed API workflow, `{node_id: node}`) whose value is a URL, in
    node then input order. Links (`[node_id, output]`) and other values are not URLs."""
    for node_id, node in workflow.items():
        for input_name, value in node.get("inputs", {}).items():
            if is_url(value):
                yield URLValue(str(node_id), node.get("class_type", ""), input_name, value.strip())
