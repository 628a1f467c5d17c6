"""Read an API-format ComfyUI workflow, and say exactly what is wrong with anything else.

The API format is what ComfyUI's `POST /prompt` runs: an object of node id → `{"class_type", "inputs"}`.
It may come as a dict, as JSON text or bytes, or wrapped in ComfyUI's own request body
(`{"prompt": {...}, "client_id": ...}`). The UI format that ComfyUI saves by default (`nodes`, `links`,
`last_node_id`) cannot be run and gets an error that says how to export the API format.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from weightkit.errors import WorkflowError

__all__ = ["MAX_DEPTH", "parse_workflow"]

# A workflow is node → inputs → value, a few levels more for lists and `_meta`; ComfyUI's own exports stay
# under 20. Deeper input is refused, so that copying or walking a workflow never recurses as deep as a
# caller chooses (Python's JSON decoder stops itself at its recursion limit, which is caught too).
MAX_DEPTH = 100
_CONTAINERS = (dict, list)

_UI_KEYS = ("nodes", "links", "last_node_id", "last_link_id")
_EXPORT_HINT = (
    "In ComfyUI, use Workflow > Export (API) (older versions: enable the dev mode options in the "
    "settings, then 'Save (API Format)'), and pass that file instead."
)


def parse_workflow(data: Mapping[str, Any] | str | bytes | bytearray) -> dict[str, dict[str, Any]]:
    """The workflow as `{node_id: node}` with string node ids, checked for shape.

    Node dicts are the caller's own objects (not copied). Raises `WorkflowError` for broken JSON
    (with line and column), a UI-format workflow, an empty or non-object workflow, a node that is not
    an object, lacks a `class_type` or has `inputs` that are not an object, and for JSON text nested
    deeper than `MAX_DEPTH` or holding a number Python cannot read.
    """
    text = isinstance(data, (str, bytes, bytearray))
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
        if text:  # the caller's own dicts are trusted; JSON text is what a prediction brings
            _check_depth(node_id, nodes[node_id])
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
    try:
        return json.loads(text)
    except RecursionError:
        raise _too_deep("") from None
    except json.JSONDecodeError as exc:
        raise WorkflowError(
            f"The workflow is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno} "
            f"(character {exc.pos}).",
            line=exc.lineno,
            column=exc.colno,
        ) from exc
    except ValueError as exc:  # an integer past Python's 4,300-digit conversion limit
        raise WorkflowError(
            f"The workflow holds a number too long to read ({exc}). ComfyUI's whole-number inputs take at "
            "most 20 digits: fix the value in the workflow."
        ) from None


def _too_deep(where: str) -> WorkflowError:
    return WorkflowError(
        f"The workflow nests objects and lists more than {MAX_DEPTH} levels deep{where}; a ComfyUI "
        "workflow needs far fewer. Export it again from ComfyUI with Workflow > Export (API)."
    )


def _check_depth(node_id: str, node: dict[str, Any]) -> None:
    """Refuse a node whose values nest deeper than `MAX_DEPTH` (counting the workflow and the node), by
    a walk with a stack of its own; scalar inputs and links `[node_id, slot]` are passed over at once."""
    stack: list[tuple[Any, int]] = [
        (value, 3) for key, value in node.items() if key != "inputs" and type(value) in _CONTAINERS
    ]
    for item in node["inputs"].values():
        kind = type(item)
        if kind is list:
            if len(item) == 2 and type(item[0]) is str and type(item[1]) is int:
                continue  # a link
        elif kind is not dict:
            continue
        stack.append((item, 4))
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _too_deep(f" (in node {node_id})")
        children = value.values() if type(value) is dict else value
        stack.extend((child, depth + 1) for child in children if type(child) in _CONTAINERS)


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
