"""Which custom node packs a workflow needs, which of them the lock has and are installed, what to add.

`required_packs(workflow, index)` reads every `class_type` of an API-format workflow, drops ComfyUI's
own classes, and answers for each other class with the pack that provides it (`PackIndex.pack_for`),
whether the lock has that pack, and, given `custom_nodes/`, whether it is installed at its commit. The
same knowledge, said as one sentence per class, is what a prediction reports for a class ComfyUI lacks
(`missing_class_hint`).

A workflow's weights can be known only when every non-core class comes from a lock pack: the lock says
which inputs of its classes name weights and which weights its classes load on their own. A class of a
pack not in the lock (or of no known pack) may load anything, so `NodesReport.weights_known` is False.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodekit.classes import PackHint, PackIndex, index_info
from nodekit.gitrepo import GitError, head_commit
from weightkit.workflow import parse_workflow

__all__ = ["ClassNeed", "NodesReport", "how_to_add", "missing_class_hint", "required_packs"]


@dataclass(frozen=True)
class ClassNeed:
    """One non-core class of a workflow: the nodes using it and the pack that provides it.

    `installed` is the commit checked out in `custom_nodes/<pack>` (None: not there, or `git_error` says
    why git would not read it), and is only meaningful when the report was made with a `custom_nodes/`
    directory.
    """

    class_type: str
    node_ids: tuple[str, ...]
    hint: PackHint | None
    installed: str | None = None
    git_error: str | None = None

    @property
    def in_lock(self) -> bool:
        return self.hint is not None and self.hint.in_lock

    @property
    def hidden_weights(self) -> str | None:
        """Why the weights this class loads cannot be read from the workflow, when the lock says so."""
        if self.hint is None or self.hint.pack is None:
            return None
        return self.hint.pack.hidden_weights.get(self.class_type)

    @property
    def install_state(self) -> str:
        """`installed`, `other commit`, `not installed`, for a pack in the lock; `by hand` otherwise."""
        if self.hint is None:
            return "-"
        if self.git_error is not None:
            return f"unreadable by git: {self.git_error}"
        if self.hint.pack is None:
            return "present (not in lock)" if self.installed else "not installed"
        if self.installed is None:
            return "not installed"
        return (
            "installed"
            if self.installed == self.hint.pack.commit
            else f"at {self.installed[:7]}, not the lock's"
        )


@dataclass(frozen=True)
class NodesReport:
    needs: tuple[ClassNeed, ...]
    checked_install: bool  # whether `installed` was looked up in a custom_nodes/ directory

    @property
    def unknown(self) -> list[ClassNeed]:
        """Classes no known pack provides."""
        return [need for need in self.needs if need.hint is None]

    @property
    def not_in_lock(self) -> dict[str, PackHint]:
        """Packs the workflow needs that the lock lacks, by name."""
        return {
            need.hint.name: need.hint for need in self.needs if need.hint is not None and not need.in_lock
        }

    @property
    def not_installed(self) -> list[str]:
        """Lock packs the workflow needs that are not installed at their commit (when checked)."""
        if not self.checked_install:
            return []
        names = {
            need.hint.name
            for need in self.needs
            if need.hint is not None
            and need.hint.pack is not None
            and need.installed != need.hint.pack.commit
        }
        return sorted(names)

    @property
    def weights_known(self) -> bool:
        """Every class comes from ComfyUI or a lock pack, so the lock describes what loads weights."""
        return not self.unknown and not self.not_in_lock

    @property
    def hidden(self) -> list[ClassNeed]:
        return [need for need in self.needs if need.hidden_weights]

    def to_json(self) -> dict[str, Any]:
        return {
            "classes": [
                {
                    "class_type": need.class_type,
                    "node_ids": list(need.node_ids),
                    "pack": need.hint.name if need.hint else None,
                    "repository": need.hint.repository if need.hint else None,
                    "in_lock": need.in_lock,
                    "installed": need.install_state if self.checked_install else None,
                    "hidden_weights": need.hidden_weights,
                }
                for need in self.needs
            ],
            "not_in_lock": sorted(self.not_in_lock),
            "not_installed": self.not_installed,
            "unknown_classes": [need.class_type for need in self.unknown],
            "weights_known": self.weights_known,
        }


def required_packs(
    workflow: Mapping[str, Any] | str | bytes, index: PackIndex, *, custom_nodes_dir: Path | None = None
) -> NodesReport:
    """The non-core classes of `workflow`, in order of first use, with their packs.

    Raises `WorkflowError` for a workflow `weightkit.workflow.parse_workflow` refuses.
    """
    nodes = parse_workflow(workflow)
    used: dict[str, list[str]] = {}
    for node_id, node in nodes.items():
        class_type = node["class_type"]
        if not index.is_core(class_type):
            used.setdefault(class_type, []).append(node_id)
    checked = custom_nodes_dir is not None and Path(custom_nodes_dir).is_dir()
    needs = []
    for class_type, node_ids in used.items():
        hint = index.pack_for(class_type)
        installed = git_error = None
        if checked and hint is not None:
            assert custom_nodes_dir is not None
            try:
                installed = head_commit(Path(custom_nodes_dir) / hint.name)
            except GitError as exc:
                git_error = exc.reason
        needs.append(ClassNeed(class_type, tuple(node_ids), hint, installed, git_error))
    return NodesReport(needs=tuple(needs), checked_install=checked)


def how_to_add(hint: PackHint) -> str:
    """The lock entry to add for a pack the lock lacks, as one line of JSON."""
    entry = {
        "name": hint.name,
        "repository": hint.repository if hint.repository.endswith(".git") else hint.repository + ".git",
        "commit": "<the 40-hex commit you tested>",
        "install": True,
    }
    return json.dumps(entry)


def missing_class_hint(class_type: str, index: PackIndex, import_failures: Mapping[str, str]) -> str | None:
    """One sentence on a class ComfyUI lacks: the pack, its repository, and what to do about it; None for
    a class no known pack provides (the running ComfyUI's nearest class name says more than nodekit can).

    `import_failures` is `{pack directory name: ComfyUI's message}` for packs that failed to import.
    """
    hint = index.pack_for(class_type)
    if hint is None:
        if index.is_core(class_type):
            return (
                f"{class_type} is one of ComfyUI's own classes (at {index_info().comfyui_commit[:7]}), which "
                "this ComfyUI did not load: it is not the pinned ComfyUI, or the module that registers the "
                "class failed to import (audio nodes without torchaudio; see ComfyUI's log)"
            )
        return None
    comes_from = f"{class_type} comes from the pack {hint.name} ({hint.repository})"
    failure = import_failures.get(hint.name)
    if failure is not None:
        return f"{comes_from}, which is installed but failed to import: {failure}"
    if hint.pack is not None:
        return (
            f"{comes_from}, which custom_nodes.json pins at {hint.pack.commit[:7]} but is not installed "
            f'here: run `python -m nodekit install --only {hint.name}`; for the image, set `"install": true` '
            "on it in custom_nodes.json (CUSTOM_NODES_INSTALL=default installs those), or list every pack to "
            "install in CUSTOM_NODES_INSTALL (names replace the default selection)"
        )
    return (
        f"{comes_from}, which custom_nodes.json does not list: add {how_to_add(hint)} to its packs (with "
        f"its loaders and weights, see docs/CUSTOM_NODES.md), then run "
        f"`python -m nodekit install --only {hint.name}`"
    )
