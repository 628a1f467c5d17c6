"""Does this ComfyUI have every node class a workflow uses? Asked before any weight is fetched.

A workflow whose class name has a typo, or comes from a custom node pack that is not installed (or failed
to import), would otherwise have its weights downloaded, only for ComfyUI to reject it afterwards.
`unknown_classes` lists the classes `/object_info` lacks; `unknown_class_error` explains them in one
paragraph, with a hint per class: what the caller's custom node knowledge says about it (a `hint_for`
callable, `hint_for(class_type, import_failures) -> sentence | None`: the pack that provides it, whether
that pack failed to import when ComfyUI started, what to add), or else the known class whose name is
nearest.

`ImportFailures` reads ComfyUI's start-up log for custom node packs that failed to import, in the words
of ComfyUI 0.3.64's `nodes.py`:

    Cannot import /ComfyUI/custom_nodes/pack module for custom nodes: No module named 'cv2'
    Skip /ComfyUI/custom_nodes/pack module for custom nodes due to the lack of NODE_CLASS_MAPPINGS or ...
       0.0 seconds (IMPORT FAILED): /ComfyUI/custom_nodes/pack
"""

from __future__ import annotations

import difflib
import re
import threading
from collections.abc import Callable, Collection, Mapping
from typing import Any

from comfyrun.errors import UnknownNodeClassError

__all__ = ["ClassHint", "ImportFailures", "unknown_class_error", "unknown_classes"]

ClassHint = Callable[[str, Mapping[str, str]], "str | None"]

_CANNOT_IMPORT = re.compile(r"Cannot import (?P<path>.+?) module for custom nodes: (?P<why>.*)$")
_SKIPPED = re.compile(r"Skip (?P<path>.+?) module for custom nodes due to (?P<why>.*?)\.?$")
_ENTRYPOINT = re.compile(r"Error while calling comfy_entrypoint in (?P<path>.+?): (?P<why>.*)$")
_CORE_NODE_FOLDERS = ("comfy_extras", "comfy_api_nodes")  # logged in the same words as packs
_FAILED = re.compile(r"^\s*[\d.]+ seconds \(IMPORT FAILED\): (?P<path>.+)$")


class ImportFailures:
    """Custom node packs ComfyUI said it could not import: `{pack folder (or file) name: why}`."""

    def __init__(self) -> None:
        self._failures: dict[str, str] = {}
        self._lock = threading.Lock()

    def feed(self, line: str) -> None:
        """One line of ComfyUI's log."""
        if "custom nodes" not in line and "IMPORT FAILED" not in line and "comfy_entrypoint" not in line:
            return
        for pattern in (_CANNOT_IMPORT, _SKIPPED, _ENTRYPOINT, _FAILED):
            match = pattern.search(line)
            if match is None:
                continue
            if any(f"/{core}/" in match["path"] for core in _CORE_NODE_FOLDERS):
                return  # ComfyUI's own optional nodes (audio without torchaudio...), not a pack
            pack = _pack_name(match["path"])
            why = match.groupdict().get("why") or "it failed to import"
            with self._lock:
                if pattern is not _FAILED or pack not in self._failures:
                    self._failures[pack] = why.strip()
            return

    def as_dict(self) -> dict[str, str]:
        with self._lock:
            return dict(self._failures)


def _pack_name(path: str) -> str:
    return path.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1]


def unknown_classes(workflow: Mapping[str, Any], known: Collection[str]) -> dict[str, list[str]]:
    """`{class_type: [node ids]}` of the workflow's classes missing from `known`, in workflow order."""
    missing: dict[str, list[str]] = {}
    for node_id, node in workflow.items():
        class_type = node.get("class_type") if isinstance(node, Mapping) else None
        if isinstance(class_type, str) and class_type not in known:
            missing.setdefault(class_type, []).append(str(node_id))
    return missing


def unknown_class_error(
    missing: Mapping[str, list[str]],
    known: Collection[str],
    *,
    import_failures: Mapping[str, str],
    hint_for: ClassHint | None = None,
) -> UnknownNodeClassError:
    """The error for `missing`, a hint per class where there is something to say."""
    hints = {}
    for class_type in missing:
        hint = _hint(class_type, known, import_failures, hint_for)
        if hint:
            hints[class_type] = hint
    return UnknownNodeClassError(missing, hints)


def _hint(
    class_type: str,
    known: Collection[str],
    import_failures: Mapping[str, str],
    hint_for: ClassHint | None,
) -> str:
    told = hint_for(class_type, import_failures) if hint_for is not None else None
    if told:
        return told
    near = difflib.get_close_matches(class_type, list(known), n=1, cutoff=0.8)
    if near:
        return f"did you mean '{near[0]}'?"
    if import_failures:
        failed = "; ".join(f"{pack} ({why})" for pack, why in sorted(import_failures.items()))
        return f"it may come from a pack that failed to import: {failed}"
    return ""
