"""Recognising an `execution_error` caused by a weight file, and which file it was.

ComfyUI reports a broken file as the loader's exception: `SafetensorError` ("incomplete metadata",
"header too large"), `PytorchStreamReader failed reading zip archive`, an unpickling error… and a missing
file in a loader it does not validate as `FileNotFoundError` "Model in folder 'F' with filename 'N' not
found.". The error names the failing node and its `current_inputs`; the workflow's weight references
(from weightkit's extraction) say which of that node's inputs are weight files, and in which folder.
An architecture ComfyUI does not support (`UnsupportedModelError`) or a state-dict mismatch is not
corruption: fetching the same file again would not help.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from comfyrun.errors import ExecutionError, WeightCorruptError, WeightMissingError
from weightkit.folders import has_model_extension

__all__ = ["WeightRefLike", "execution_error", "looks_corrupt", "missing_weight", "suspect_files"]

_CORRUPT_TYPES = ("SafetensorError", "UnpicklingError")
_CORRUPT_MESSAGES = (
    "PytorchStreamReader failed",
    "failed finding central directory",
    "invalid load key",
    "Error while deserializing header",
    "file not fully covered",
    "Ran out of input",
    "unexpected EOF",
    "is not a zip file",
)
_MISSING = re.compile(r"Model in folder '(?P<folder>[^']+)' with filename '(?P<name>[^']+)' not found")


class WeightRefLike(Protocol):
    """A weight a workflow needs (`weightkit.extract.WeightRef`): file `name` in model `folder` (None when
    no one knows where the node looks), read by input `input_name` of node `node_id`."""

    @property
    def name(self) -> str: ...

    @property
    def folder(self) -> str | None: ...

    @property
    def node_id(self) -> str: ...

    @property
    def input_name(self) -> str: ...


def looks_corrupt(data: Mapping[str, Any]) -> bool:
    """Does this `execution_error` say a weight file's bytes are broken?"""
    exception_type = str(data.get("exception_type", ""))
    message = str(data.get("exception_message", ""))
    if exception_type.rsplit(".", 1)[-1] in _CORRUPT_TYPES:
        return True
    return any(fragment in message for fragment in _CORRUPT_MESSAGES)


def missing_weight(data: Mapping[str, Any]) -> tuple[str, str] | None:
    """`(folder, name)` when the error is ComfyUI not finding a model file, else None."""
    if not str(data.get("exception_type", "")).endswith("FileNotFoundError"):
        return None
    found = _MISSING.search(str(data.get("exception_message", "")))
    return (found["folder"], found["name"]) if found else None


def suspect_files(
    data: Mapping[str, Any], refs: Iterable[WeightRefLike] | None
) -> list[tuple[str | None, str]]:
    """`(folder, name)` of each weight the failing node was loading, in the workflow's order.

    With `refs` (the workflow's extracted weights) these are the node's weight inputs, narrowed to the
    values ComfyUI reports in `current_inputs`, or, when the file was extracted for another node that
    loads it too, the refs named by those values. Without refs, the folder is unknown and the names are
    the node's inputs that look like model files.
    """
    node = str(data.get("node_id", ""))
    current = _current_values(data.get("current_inputs"))
    if refs is None:
        names = [value for values in current.values() for value in values if has_model_extension(value)]
        return [(None, name) for name in dict.fromkeys(names)]
    refs = list(refs)
    of_node = [ref for ref in refs if str(ref.node_id) == node]
    reported = [ref for ref in of_node if ref.name in current.get(ref.input_name, ())]
    # Extraction reports a file once, for the first node that asks for it: another node may load it too.
    values = {value for values in current.values() for value in values}
    elsewhere = [ref for ref in refs if ref.name in values]
    chosen = reported or of_node or elsewhere
    return list(dict.fromkeys((ref.folder, ref.name) for ref in chosen))


def _current_values(raw: Any) -> dict[str, Sequence[str]]:
    if not isinstance(raw, Mapping):
        return {}
    values: dict[str, Sequence[str]] = {}
    for name, items in raw.items():
        items = items if isinstance(items, list) else [items]
        values[str(name)] = [item for item in items if isinstance(item, str)]
    return values


def execution_error(
    data: Mapping[str, Any], refs: Sequence[WeightRefLike] | None, *, have_store: bool
) -> ExecutionError:
    """The typed error for an `execution_error` message: a missing weight, a corrupt one (with the files
    it may be, from the workflow's `refs`), or any other node failure."""
    missing = missing_weight(data)
    if missing is not None:
        return WeightMissingError(data, folder=missing[0], name=missing[1])
    if looks_corrupt(data):
        tried = "" if have_store else "No weight store was given, so it was not fetched again."
        return WeightCorruptError(data, files=suspect_files(data, refs), tried=tried)
    return ExecutionError(data)
