"""ComfyUI's classic output cache: a node whose inputs did not change is not run again.

A node's key is its class, its IS_CHANGED answer and its inputs, with each link replaced by the key of
the node it comes from (so the whole upstream graph is part of the key, not node ids). When a prompt
starts, entries no node of that prompt uses are dropped; so a prompt re-run right after itself is
fully cached, while a loader's output survives its file being overwritten until the cache is reset
(`POST /free` with `free_memory`). With `--cache-none` nothing is kept between prompts.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .graph import Prompt, is_link

_nan_counter = itertools.count()


class Unhashable:
    """A key part that equals nothing, not even another Unhashable (ComfyUI uses NaN for this)."""

    def __init__(self) -> None:
        self._id = next(_nan_counter)

    def __hash__(self) -> int:
        return self._id

    def __eq__(self, other: object) -> bool:
        return False


def freeze(value: Any) -> Any:
    """A hashable stand-in for a JSON-like value (ComfyUI's to_hashable)."""
    if isinstance(value, (int, float, str, bool, type(None))):
        return value
    if isinstance(value, Mapping):
        return frozenset((freeze(k), freeze(v)) for k, v in sorted(value.items()))
    if isinstance(value, Sequence):
        return frozenset(zip(itertools.count(), (freeze(v) for v in value)))
    return Unhashable()


def input_signatures(
    prompt: Prompt, fingerprint: Callable[[str], Any], node_id_matters: Callable[[str], bool]
) -> dict[str, Any]:
    """The cache key of every node of the prompt."""
    return {node_id: _signature(prompt, node_id, fingerprint, node_id_matters) for node_id in prompt}


def _signature(
    prompt: Prompt, node_id: str, fingerprint: Callable[[str], Any], node_id_matters: Callable[[str], bool]
) -> Any:
    ancestors: list[str] = []
    order: dict[str, int] = {}
    _ordered_ancestry(prompt, node_id, ancestors, order)
    parts = [_immediate(prompt, n, order, fingerprint, node_id_matters) for n in [node_id, *ancestors]]
    return freeze(parts)


def _ordered_ancestry(prompt: Prompt, node_id: str, ancestors: list[str], order: dict[str, int]) -> None:
    if node_id not in prompt:
        return
    inputs = prompt[node_id]["inputs"]
    for key in sorted(inputs):
        if is_link(inputs[key]):
            ancestor = inputs[key][0]
            if ancestor not in order:
                ancestors.append(ancestor)
                order[ancestor] = len(ancestors) - 1
                _ordered_ancestry(prompt, ancestor, ancestors, order)


def _immediate(
    prompt: Prompt,
    node_id: str,
    order: dict[str, int],
    fingerprint: Callable[[str], Any],
    node_id_matters: Callable[[str], bool],
) -> list[Any]:
    if node_id not in prompt:
        return [Unhashable()]
    node = prompt[node_id]
    signature: list[Any] = [node["class_type"], fingerprint(node_id)]
    if node_id_matters(node_id):
        signature.append(node_id)
    inputs = node["inputs"]
    for key in sorted(inputs):
        if is_link(inputs[key]):
            ancestor, socket = inputs[key]
            signature.append((key, ("ANCESTOR", order[ancestor], socket)))
        else:
            signature.append((key, inputs[key]))
    return signature


class Cache:
    """Values by cache key; `set_prompt` binds node ids to keys and drops what the prompt does not use."""

    def __init__(self, *, keep_between_prompts: bool = True) -> None:
        self._keep = keep_between_prompts
        self._values: dict[Any, Any] = {}
        self._keys: dict[str, Any] = {}

    def set_prompt(self, keys: Mapping[str, Any]) -> None:
        self._keys = dict(keys)
        used = set(self._keys.values()) if self._keep else set()
        self._values = {k: v for k, v in self._values.items() if k in used}

    def get(self, node_id: str) -> Any:
        key = self._keys.get(node_id)
        return None if key is None else self._values.get(key)

    def set(self, node_id: str, value: Any) -> None:
        self._values[self._keys[node_id]] = value

    def node_ids(self) -> list[str]:
        return list(self._keys)

    def clear(self) -> None:
        self._values.clear()
