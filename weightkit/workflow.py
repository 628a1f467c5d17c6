"""Read an API-format ComfyUI workflow, and say exactly what is wrong with anything else.

The API format is what ComfyUI's `POST /prompt` runs: an object of node id → `{"class_type", "inputs"}`.
It may come as a dict, as JSON text or bytes, or wrapped in ComfyUI's own request body
(`{"prompt": {...}, "client_id": ...}`). The UI format that ComfyUI saves by default (`nodes`, `links`,
`last_node_id`) cannot be run and gets an error that says how to export the API format.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from weightkit.errors import WorkflowError

__all__ = ["MAX_DEPTH", "MAX_INTEGER_DIGITS", "parse_workflow"]

# A workflow is node → inputs → value, a few levels more for lists and `_meta`; ComfyUI's own exports stay
# under 20. The limit keeps parsing, copying and walking a workflow free of recursion that a caller's
# input controls (Python's JSON decoder and `copy.deepcopy` recurse once per level).
MAX_DEPTH = 100
# ComfyUI's INT inputs are 64-bit (20 digits); Python refuses to convert more than 4,300 digits anyway.
MAX_INTEGER_DIGITS = 100
_NESTING = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')

_UI_KEYS = ("nodes", "links", "last_node_id", "last_link_id")
_EXPORT_HINT = (
    "In ComfyUI, use Workflow > Export (API) (older versions: enable the dev mode options in the "
    "settings, then 'Save (API Format)'), and pass that file instead."
)


def parse_workflow(data: Mapping[str, Any] | str | bytes | bytearray) -> dict[str, dict[str, Any]]:
    """The workflow as `{node_id: node}` with string node ids, checked for shape.

    Node dicts are the caller's own objects (not copied). Raises `WorkflowError` for broken JSON
    (with line and column), a UI-format workflow, an empty or non-object workflow, a node that is not
    an object, lacks a `class_type` or has `inputs` that are not an object.
    """
    if isinstance(data, (str, bytes, bytearray)):
        data = _loads(data)
    if not isinstance(data, Mapping):
        raise WorkflowError(
            f"A workflow must be a JSON object of node id to node, but this one is {_kind(data)}. "
            + _EXPORT_HINT
        )
    prompt = data.get("prompt")
    if isinstance(prompt, Mapping) and "class_type" not in prompt:
        data = prompt  # ComfyUI's request body: {"prompt": {...}, "client_id": ..., "extra_data": ...}
    if isinstance(data.get("nodes"), list) and any(key in data for key in _UI_KEYS[1:]):
        raise WorkflowError(
            "This workflow is in ComfyUI's UI format (it has 'nodes' and 'links'), which ComfyUI saves for "
            "its editor but cannot run; the API format is needed. " + _EXPORT_HINT
        )
    if not data:
        raise WorkflowError("The workflow is empty: it has no nodes. " + _EXPORT_HINT)
    nodes: dict[str, dict[str, Any]] = {}
    for key, node in data.items():
        node_id = _node_id(key)
        if node_id in nodes:
            raise WorkflowError(f"Node id {node_id} appears twice (as {key!r} too).", node_id=node_id)
        nodes[node_id] = _check_node(node_id, node)
    return nodes


def _loads(text: str | bytes | bytearray) -> Any:
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise WorkflowError(
                f"The workflow is not UTF-8 text: undecodable byte at position {exc.start}."
            ) from exc
    elif text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        raise WorkflowError("The workflow is empty: no JSON was given. " + _EXPORT_HINT)
    _check_depth(text)
    try:
        return json.loads(text, parse_int=_integer)
    except json.JSONDecodeError as exc:
        raise WorkflowError(
            f"The workflow is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno} "
            f"(character {exc.pos}).",
            line=exc.lineno,
            column=exc.colno,
        ) from exc


def _check_depth(text: str) -> None:
    """Refuse nesting deeper than `MAX_DEPTH` by counting brackets outside strings, without recursing."""
    depth = 0
    for token in _NESTING.finditer(text):
        bracket = token.group()
        if bracket in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise WorkflowError(
                    f"The workflow nests objects and lists more than {MAX_DEPTH} levels deep (at character "
                    f"{token.start()}); a ComfyUI workflow needs far fewer. Export it again from ComfyUI "
                    "with Workflow > Export (API)."
                )
        elif bracket in "]}":
            depth -= 1


def _integer(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise WorkflowError(
            f"The workflow holds an integer of {len(digits.lstrip('-')):,} digits; ComfyUI's whole-number "
            f"inputs take at most 20 (this limit is {MAX_INTEGER_DIGITS}). Fix the value in the workflow."
        )
    return int(digits)


def _node_id(key: Any) -> str:
    if isinstance(key, str) and key:
        return key
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key)
    raise WorkflowError(f'Node ids must be non-empty strings such as "3", not {key!r}.')


def _check_node(node_id: str, node: Any) -> dict[str, Any]:
    if not isinstance(node, dict):
        raise WorkflowError(
            f"Node {node_id} must be an object with 'class_type' and 'inputs', but it is {_kind(node)}. "
            "If this is not an API-format workflow: " + _EXPORT_HINT,
            node_id=node_id,
        )
    class_type = node.get("class_type")
    if not isinstance(class_type, str) or not class_type.strip():
        what = "has no 'class_type'" if class_type is None else f"has the class_type {class_type!r}"
        raise WorkflowError(
            f"Node {node_id} {what}; every node needs the name of its node class as a string "
            '(for example "CheckpointLoaderSimple"). ' + _EXPORT_HINT,
            node_id=node_id,
        )
    inputs = node.get("inputs")
    if not isinstance(inputs, dict):
        what = "has no 'inputs'" if inputs is None else f"has 'inputs' that are {_kind(inputs)}"
        raise WorkflowError(
            f"Node {node_id} ({class_type}) {what}; 'inputs' must be an object of input name to value "
            "or link ([node_id, output_index]), even when empty ({}).",
            node_id=node_id,
            class_type=class_type,
        )
    return node


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"
