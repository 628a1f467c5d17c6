"""Which weight files a workflow needs: every name, the model folder ComfyUI will look in, and who asked.

Three sources, combined and de-duplicated by (folder, name):

1. Loader inputs: the manifest's loader map (`loaders.LoaderMap`: the 27 loader nodes of ComfyUI 0.3.64,
   extended and overridden by the manifest's `loaders` for custom nodes).
2. Any other string input whose value ends in a model extension (`folders.MODEL_EXTENSIONS`), placed in
   the folder of the manifest entry of that name.
3. `embedding:NAME` in any text input, resolved in the `embeddings` folder as ComfyUI's tokenizer does.
4. The weights a custom node class loads on its own when it runs (the manifest's `needs`, from the
   custom node lock), reported for the node that uses the class; and the weight the value of one of its
   inputs makes it load (the manifest's `chosen`: DWPose's `bbox_detector: yolox_l.onnx`).

Values that name no file (`pixel_space`, `taesd*`, `None`, links `[node_id, slot]`) are skipped. A name
that would leave its folder raises `UnsafeWeightNameError` before anything touches the disk, where it is
looked up as a weight: in a loader input or an embedding. In any other input (source 2) such a path is
not looked up, so it is left to its node rather than refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from weightkit.errors import UnsafeWeightNameError, WorkflowError
from weightkit.folders import EMBEDDING_EXTENSIONS, EMBEDDINGS, MODEL_EXTENSIONS
from weightkit.loaders import builtin_loader_map
from weightkit.manifest import Manifest, WeightEntry, name_is_safe
from weightkit.urlforms import display_url, is_weight_url, stable_weight_name, url_problem
from weightkit.workflow import parse_workflow

__all__ = ["RUNTIME_INPUT", "WeightRef", "required_weights"]

# The `input_name` of a weight a node class loads on its own when it runs (a custom node's `needs`).
RUNTIME_INPUT = "(loaded when it runs)"

# `embedding:NAME` where ComfyUI's tokenizer sees a word start: start of text, whitespace or '('.
_EMBEDDING = re.compile(r"(?<![^\s(])embedding:([^\s()]+)")
# `(embedding:NAME:1.2)` gives the word a weight; the weight is not part of the name.
_EMBEDDING_WEIGHT = re.compile(r":[-+]?(?:\d+\.?\d*|\.\d+)$")
_LONGEST_EXTENSION = max(len(ext) for ext in MODEL_EXTENSIONS)


@dataclass(frozen=True, slots=True)
class WeightRef:
    """One weight file a workflow needs, as the workflow wrote it.

    `name` is the spelling in the workflow (an alias or `.sft` spelling stays as written, since that is the
    file ComfyUI opens); `entry` is the manifest entry it resolves to, or None when the manifest does not
    know it. `folder` is the canonical model folder, or None for a generic input (source 2) whose name no
    manifest entry places: such a file is still reported so the user learns about it, but no one can say
    where the custom node that takes it will look, so it cannot be checked or fetched.
    """

    name: str
    folder: str | None
    node_id: str
    class_type: str
    input_name: str
    entry: WeightEntry | None = None
    url: str | None = None  # the URL the workflow gave instead of a name, as written

    @classmethod
    def of_entry(cls, entry: WeightEntry) -> WeightRef:
        """A manifest weight asked for by name, kit or preload rather than by a workflow node."""
        return cls(entry.name, entry.folder, "-", "manifest", "name", entry)

    @property
    def label(self) -> str:
        """`folder/name`, as logs name a weight."""
        return f"{self.folder}/{self.name}" if self.folder else self.name

    @property
    def where(self) -> str:
        """`node 4 (LoraLoader) input 'lora_name'`: who asked for this file, for messages."""
        if self.input_name == RUNTIME_INPUT:
            return f"node {self.node_id} ({self.class_type}), which loads it when it runs"
        return f"node {self.node_id} ({self.class_type}) input '{self.input_name}'"


def required_weights(
    workflow: Mapping[str, Any] | str | bytes, manifest: Manifest | None = None
) -> list[WeightRef]:
    """Every weight file `workflow` needs, de-duplicated by (folder, name).

    Ordered by node id as ComfyUI numbers nodes (numeric ids numerically, `10:5` subgraph ids part by
    part), then by input order within a node; the first node asking for a file is the one reported.
    A loader input holding a URL is a weight fetched from it (`url`), under the manifest's name when the
    manifest lists that URL and else under its stable name (`urlforms.stable_weight_name`), one ref per
    URL as written. `workflow` is anything `parse_workflow` accepts. Raises `WorkflowError` for a
    malformed workflow or a loader's URL that nothing can be fetched from (`urlforms.url_problem`), and
    `UnsafeWeightNameError` for a loader's weight name that is absolute, contains `..` or a backslash.
    """
    nodes = parse_workflow(workflow)
    found = _Found(manifest)
    for node_id in _in_node_order(nodes):
        found.node(node_id, nodes[node_id])
    return list(found.refs.values())


class _Found:
    """The refs of one workflow as its nodes are read, keyed by (folder, name or URL as written)."""

    def __init__(self, manifest: Manifest | None) -> None:
        self.manifest = manifest
        self.loaders = manifest.loader_map if manifest is not None else builtin_loader_map()
        self.needs = manifest.needs if manifest is not None else {}
        self.chosen = manifest.chosen if manifest is not None else {}
        self.refs: dict[tuple[str | None, str], WeightRef] = {}

    def node(self, node_id: str, node: Mapping[str, Any]) -> None:
        class_type = node["class_type"]
        loader = self.loaders.folders.get(class_type)
        for key in self.needs.get(class_type, ()):
            if self.manifest is not None:
                needed = self.manifest.entries[key]
                self.add(needed.name, needed.folder, node_id, class_type, RUNTIME_INPUT)
        picks = self.chosen.get(class_type, {})
        for input_name, value in node["inputs"].items():
            if type(value) is not str:  # links [node_id, slot], numbers, booleans, null
                continue
            if input_name in picks and self.manifest is not None:
                picked = picks[input_name].get(value)
                if picked is not None:
                    chosen = self.manifest.entries[picked]
                    self.add(chosen.name, chosen.folder, node_id, class_type, input_name)
                continue
            folder = loader.get(input_name) if loader else None
            if folder is not None:
                not_files = self.loaders.not_files.get(class_type, {}).get(input_name, ())
                if is_weight_url(value):
                    self.add_url(value, folder, node_id, class_type, input_name)
                elif _names_a_file(value, not_files):
                    self.add(value, folder, node_id, class_type, input_name)
            elif "embedding:" in value:
                for name in _embedding_names(value):
                    self.add(name, EMBEDDINGS, node_id, class_type, input_name)
            elif _looks_like_model_file(value) and name_is_safe(value):
                # An absolute or climbing path here is no weight name weightkit looks up (a custom
                # node's output path, say): the node handles it, so it is neither reported nor refused.
                self.add(value, None, node_id, class_type, input_name)

    def add(self, name: str, folder: str | None, node_id: str, class_type: str, input_name: str) -> None:
        if (folder, name) in self.refs:
            return
        if not name_is_safe(name):
            raise UnsafeWeightNameError(
                node_id=node_id, class_type=class_type, input_name=input_name, value=name
            )
        entry: WeightEntry | None = None
        manifest = self.manifest
        if manifest is not None:
            if folder is None:
                entry = manifest.find(name)
                folder = entry.folder if entry else None
                if (folder, name) in self.refs:
                    return
            elif folder == EMBEDDINGS:
                entry = _find_embedding(manifest, name)
            else:
                entry = manifest.find(name, folder)
        self.refs[(folder, name)] = WeightRef(name, folder, node_id, class_type, input_name, entry)

    def add_url(self, url: str, folder: str, node_id: str, class_type: str, input_name: str) -> None:
        if (folder, url) in self.refs:
            return
        problem = url_problem(url)
        if problem is not None:
            raise WorkflowError(
                f"Node {node_id} ({class_type}) input '{input_name}' gives the URL {display_url(url)!r}, "
                f"which {problem}. Correct the URL in the workflow (a weight's URL is fetched into the "
                f"'{folder}' folder), or give the name of a file that is there.",
                node_id=node_id,
                class_type=class_type,
                input_name=input_name,
            )
        entry = self.manifest.find_url(url) if self.manifest is not None else None
        if entry is not None and entry.folder != folder:
            entry = None  # the manifest knows the file, but not as this loader's: fetch it as a URL
        name = entry.name if entry is not None else stable_weight_name(url)
        self.refs[(folder, url)] = WeightRef(name, folder, node_id, class_type, input_name, entry, url=url)


def _in_node_order(node_ids: Iterable[str]) -> list[str]:
    """Numeric ids numerically; `10:5` subgraph ids part by part after `10`; other ids after numbers."""
    ids = list(node_ids)
    if all(node_id.isascii() and node_id.isdigit() for node_id in ids):
        return sorted(ids, key=int)
    return sorted(ids, key=_node_order_key)


def _node_order_key(node_id: str) -> tuple[tuple[int, int, str], ...]:
    """Sort key putting node ids in ComfyUI's numbering order (see `required_weights`)."""
    return tuple(
        (0, int(part), "") if part.isascii() and part.isdigit() else (1, 0, part)
        for part in node_id.split(":")
    )


def _names_a_file(value: str, not_files: tuple[str, ...]) -> bool:
    """Not empty, not `None`, and none of the input's special values (exact, or a prefix ending in `*`)."""
    if not value or value.lower() == "none":
        return False
    return not any(value == v or (v.endswith("*") and value.startswith(v[:-1])) for v in not_files)


def _looks_like_model_file(value: str) -> bool:
    """A generic input holding one file name with a model extension (not a URL, not a multi-line text)."""
    return (
        value[-_LONGEST_EXTENSION:].lower().endswith(MODEL_EXTENSIONS)
        and "\n" not in value
        and "://" not in value
    )


def _embedding_names(text: str) -> list[str]:
    """The NAMEs of `embedding:NAME` words, as ComfyUI's tokenizer reads them.

    A trailing comma is not part of the name (ComfyUI retries without it) and neither is a `:1.2`
    weight inside parentheses.
    """
    names = []
    for match in _EMBEDDING.finditer(text):
        name = _EMBEDDING_WEIGHT.sub("", match.group(1).rstrip(",")).rstrip(",")
        if name:
            names.append(name)
    return names


def _find_embedding(manifest: Manifest, name: str) -> WeightEntry | None:
    """ComfyUI opens NAME if it exists, else NAME.safetensors, NAME.pt, NAME.bin; so does the manifest."""
    entry = manifest.find(name, EMBEDDINGS)
    if entry is None and not name.lower().endswith(MODEL_EXTENSIONS):
        for extension in EMBEDDING_EXTENSIONS:
            entry = manifest.find(name + extension, EMBEDDINGS)
            if entry is not None:
                break
    return entry
