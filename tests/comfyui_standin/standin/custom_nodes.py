"""Custom node packs, loaded from every `custom_nodes` folder as ComfyUI v0.3.64's `nodes.py` loads them.

Each entry of a folder (sorted here; ComfyUI takes `os.listdir` order) is a pack: a `.py` file, or a
directory imported through its `__init__.py`; other files, `__pycache__` and names ending in `.disabled`
are skipped, and with `--disable-all-custom-nodes` so is every pack not in `--whitelist-custom-nodes`.
A pack's `NODE_CLASS_MAPPINGS` adds its classes (never replacing a built-in one), with
`NODE_DISPLAY_NAME_MAPPINGS` and a `WEB_DIRECTORY` whose `.js` files `/extensions` lists. A pack that
raises while importing is logged with its traceback and skipped; so is one without `NODE_CLASS_MAPPINGS`.
Then the import times, in ComfyUI's words and format:

    Cannot import /base/custom_nodes/broken module for custom nodes: No module named 'cv2'
    Import times for custom nodes:
       0.0 seconds (IMPORT FAILED): /base/custom_nodes/broken

Packs may `import folder_paths` (the stand-in's, beside main.py). V3 packs (`comfy_entrypoint`) are not
loaded: the stand-in has no `comfy_api`.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import time
import traceback
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class CustomNodes:
    classes: dict[str, type] = field(default_factory=dict)
    display_names: dict[str, str] = field(default_factory=dict)
    web_dirs: dict[str, str] = field(default_factory=dict)  # pack name -> its WEB_DIRECTORY


def load_custom_nodes(
    folders: Collection[str], *, builtin: Collection[str], whitelist: Collection[str] | None
) -> CustomNodes:
    """Every pack of `folders`; `whitelist` None loads all, else only the packs it names."""
    loaded = CustomNodes()
    import_times = []
    for folder in folders:
        for entry in sorted(os.listdir(os.path.realpath(folder))):  # raises for a missing folder, as ComfyUI
            path = os.path.join(folder, entry)
            if entry == "__pycache__" or entry.endswith(".disabled"):
                continue
            if os.path.isfile(path) and os.path.splitext(path)[1] != ".py":
                continue
            if whitelist is not None and entry not in whitelist:
                log.info("Skipping %s due to disable_all_custom_nodes and whitelist_custom_nodes", entry)
                continue
            started = time.perf_counter()
            ok = _load_pack(path, set(builtin), loaded)
            import_times.append((time.perf_counter() - started, path, ok))
    if import_times:
        log.info("\nImport times for custom nodes:")
        for seconds, path, ok in sorted(import_times):
            log.info("%6.1f seconds%s: %s", seconds, "" if ok else " (IMPORT FAILED)", path)
        log.info("")
    return loaded


def _load_pack(path: str, builtin: set[str], loaded: CustomNodes) -> bool:
    is_file = os.path.isfile(path)
    name = os.path.splitext(os.path.basename(path))[0] if is_file else os.path.basename(path)
    module_name = os.path.splitext(path)[0] if is_file else path.replace(".", "_x_")
    try:
        spec = importlib.util.spec_from_file_location(
            module_name, path if is_file else os.path.join(path, "__init__.py")
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        web = getattr(module, "WEB_DIRECTORY", None)
        if web is not None:
            web_dir = os.path.abspath(os.path.join(os.path.dirname(spec.origin or path), web))
            if os.path.isdir(web_dir):
                loaded.web_dirs[name] = web_dir
        mappings: dict[str, Any] | None = getattr(module, "NODE_CLASS_MAPPINGS", None)
        if mappings is None:
            log.warning(
                "Skip %s module for custom nodes due to the lack of NODE_CLASS_MAPPINGS or NODES_LIST "
                "(need one).",
                path,
            )
            return False
        for class_type, node_class in mappings.items():
            if class_type not in builtin:
                loaded.classes[class_type] = node_class
                node_class.RELATIVE_PYTHON_MODULE = f"custom_nodes.{name}"
        loaded.display_names.update(getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", None) or {})
        return True
    except Exception as e:
        log.warning(traceback.format_exc())
        log.warning("Cannot import %s module for custom nodes: %s", path, e)
        return False


def run_pack_node(
    node_class: Any, state: dict[str, Any], inputs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, list[Any]] | None]:
    """Run a pack's class as ComfyUI runs a classic node: one object per node id, kept between prompts
    (`state`), its `FUNCTION` called; a dict answer holds `result` and `ui`. Returns (result, ui)."""
    node = state.setdefault("object", node_class())
    answer = getattr(node, node_class.FUNCTION)(**inputs)
    if isinstance(answer, dict):
        return tuple(answer.get("result") or ()), answer.get("ui")
    return tuple(answer or ()), None


def node_info(class_type: str, node_class: Any, display_name: str | None) -> dict[str, Any]:
    """`/object_info`'s entry for a classic node class, built as ComfyUI's server.node_info builds it."""
    inputs = node_class.INPUT_TYPES()
    returns = tuple(node_class.RETURN_TYPES)
    info: dict[str, Any] = {
        "input": inputs,
        "input_order": {key: list(value) for key, value in inputs.items()},
        "output": returns,
        "output_is_list": getattr(node_class, "OUTPUT_IS_LIST", [False] * len(returns)),
        "output_name": getattr(node_class, "RETURN_NAMES", returns),
        "name": class_type,
        "display_name": display_name or class_type,
        "description": getattr(node_class, "DESCRIPTION", ""),
        "python_module": getattr(node_class, "RELATIVE_PYTHON_MODULE", "nodes"),
        "category": getattr(node_class, "CATEGORY", "sd"),
        "output_node": getattr(node_class, "OUTPUT_NODE", False) is True,
    }
    for flag, key in (("DEPRECATED", "deprecated"), ("EXPERIMENTAL", "experimental")):
        if getattr(node_class, flag, False):
            info[key] = True
    return info
