"""The prompt as a graph: links, a node's input values, and the order nodes run in (ComfyUI's ExecutionList).

The order is ComfyUI's: starting from the output nodes, a node becomes ready once every node it links
from has run (or is cached), and among ready nodes an output node goes first, then a node feeding an
output, then one two steps from an output, else the first ready one in discovery order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .catalog import Catalog

Prompt = dict[str, dict[str, Any]]


def is_link(value: Any) -> bool:
    """`[node_id, output_index]`, ComfyUI's link value."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], (int, float))
        and not isinstance(value[1], bool)
    )


def node_inputs(
    prompt: Prompt,
    node_id: str,
    catalog: Catalog,
    produced_by: Callable[[str], list[list[Any]] | None] | None,
    extra_data: Mapping[str, Any],
) -> tuple[dict[str, list[Any]], set[str]]:
    """Each declared input as a list of values, plus the names of links not resolved.

    `produced_by(node_id)` gives a node's outputs; None means no outputs exist yet (validation), and then
    every link is unresolved and the hidden PROMPT input is empty, as in ComfyUI. Hidden inputs of
    classic nodes are filled as ComfyUI fills them: the prompt, `extra_pnginfo`, the node id.
    """
    class_type = prompt[node_id]["class_type"]
    spec = catalog.inputs(class_type)
    declared = {**spec.get("required", {}), **spec.get("optional", {}), **spec.get("hidden", {})}
    values: dict[str, list[Any]] = {}
    missing: set[str] = set()
    for name, value in prompt[node_id]["inputs"].items():
        if is_link(value):
            produced = produced_by(value[0]) if produced_by is not None else None
            if produced is None or value[1] >= len(produced):
                missing.add(name)
                values[name] = [None]
            else:
                values[name] = produced[int(value[1])]
        elif name in declared:
            values[name] = [value]
    if not catalog.is_v3(class_type):
        for name, kind in spec.get("hidden", {}).items():
            if kind == "PROMPT":
                values[name] = [prompt if produced_by is not None else {}]
            elif kind == "EXTRA_PNGINFO":
                values[name] = [extra_data.get("extra_pnginfo")]
            elif kind == "UNIQUE_ID":
                values[name] = [node_id]
            elif kind in ("AUTH_TOKEN_COMFY_ORG", "API_KEY_COMFY_ORG"):
                values[name] = [extra_data.get(kind.lower())]
    return values, missing


class ExecutionList:
    """Nodes still to run for a prompt; `is_cached(node_id)` says whose outputs need not be computed."""

    def __init__(self, prompt: Prompt, catalog: Catalog, is_cached: Callable[[str], bool]) -> None:
        self._prompt = prompt
        self._catalog = catalog
        self._is_cached = is_cached
        self._pending: dict[str, bool] = {}
        self._block_count: dict[str, int] = {}
        self._blocking: dict[str, dict[str, dict[Any, bool]]] = {}

    def add_node(self, node_id: str) -> None:
        """Schedule a node and, recursively, every uncached node it links from."""
        stack = [node_id]
        links = []
        while stack:
            current = stack.pop()
            if current in self._pending:
                continue
            self._pending[current] = True
            self._block_count[current] = 0
            self._blocking[current] = {}
            for value in self._prompt[current]["inputs"].values():
                if is_link(value) and not self._is_cached(value[0]):
                    stack.append(value[0])
                    links.append((value[0], value[1], current))
        for from_id, socket, to_id in links:
            self._add_link(from_id, socket, to_id)

    def _add_link(self, from_id: str, socket: Any, to_id: str) -> None:
        if self._is_cached(from_id):
            return
        self.add_node(from_id)
        if to_id not in self._blocking[from_id]:
            self._blocking[from_id][to_id] = {}
            self._block_count[to_id] += 1
        self._blocking[from_id][to_id][socket] = True

    def is_empty(self) -> bool:
        return not self._pending

    def waiting(self) -> list[str]:
        return list(self._pending)

    def next_node(self) -> str | None:
        """The node to run next, or None when what is left waits on a dependency cycle."""
        ready = [n for n in self._pending if self._block_count[n] == 0]
        if not ready:
            return None
        for node_id in ready:
            if self._is_output(node_id):
                return node_id
        for node_id in ready:
            if any(self._is_output(b) for b in self._blocking[node_id]):
                return node_id
        for node_id in ready:
            if any(self._is_output(c) for b in self._blocking[node_id] for c in self._blocking[b]):
                return node_id
        return ready[0]

    def complete(self, node_id: str) -> None:
        del self._pending[node_id]
        for blocked in self._blocking.pop(node_id):
            self._block_count[blocked] -= 1

    def _is_output(self, node_id: str) -> bool:
        return self._catalog.is_output(self._prompt[node_id]["class_type"])
