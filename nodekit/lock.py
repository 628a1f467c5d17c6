"""The custom node lock, `custom_nodes.json`: which packs, pinned at which commit, what they mean for weights.

A lock is a versioned JSON document (schema in docs/CUSTOM_NODES.md). Each pack names a directory under
ComfyUI's `custom_nodes/`, a git repository and a 40-hex commit, whether it is in the default selection
(`install`), and what the project must know about it: its loader inputs, the model folders it registers,
the weights it loads on its own when it runs (ordinary manifest entries, validated by weightkit's own
parser), environment variables that point its downloads into the weights directory, and the classes
whose weights no workflow names. Loading validates all of it and names the pack and field that is
wrong; `dumps()` is byte-stable (packs sorted by name, fixed key order), so the committed file diffs
cleanly and `load_lock(path).dumps()` reproduces it.

`Lock.as_manifest()` is the weights side of the lock, a `Manifest` fragment to merge over the weights
manifest; `Lock.comfyui_env(weights_dir)` the environment ComfyUI needs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodekit.errors import LockError, UnknownPackError
from nodekit.lockparse import expand_inputs, parse_lock_document
from nodekit.lockrules import check_across_packs
from weightkit.jsonfile import read_json_file
from weightkit.manifest import Manifest, WeightEntry

__all__ = ["SCHEMA_VERSION", "Clone", "Lock", "Pack", "PackFolder", "PackWeight", "load_lock", "parse_lock"]

SCHEMA_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class Clone:
    """A repository a pack expects cloned inside itself at `path` (not a git submodule of the pack)."""

    path: str
    repository: str
    commit: str

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "repository": self.repository, "commit": self.commit}


@dataclass(frozen=True, kw_only=True)
class PackFolder:
    """A model folder type a pack registers with ComfyUI, found in `<WEIGHTS_DIR>/<path>`.

    `extensions` are the file endings the pack lists in it (empty: any file, as ComfyUI treats an empty
    set); `path` is the folder's directory under the weights directory, the folder name unless the pack
    looks for it elsewhere (`ultralytics_bbox` lives in `ultralytics/bbox`).
    """

    name: str
    path: str
    extensions: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.path != self.name:
            out["path"] = self.path
        out["extensions"] = list(self.extensions)
        return out


@dataclass(frozen=True, kw_only=True)
class PackWeight:
    """A weight a pack loads on its own: a manifest entry, and where the pack opens it when that is not
    in the weights directory (`target`, relative to the ComfyUI directory), so it is linked there."""

    entry: WeightEntry
    target: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = self.entry.to_json()
        if self.target is not None:
            out["target"] = self.target
        return out


@dataclass(frozen=True, kw_only=True, eq=False)
class Pack:
    """One custom node pack, pinned. `name` is its directory under `custom_nodes/` (some packs find
    each other by directory name, so it is the repository's own name)."""

    name: str
    repository: str
    commit: str
    install: bool
    requirements: tuple[str, ...] | None = None
    clones: tuple[Clone, ...] = ()
    supersedes: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    loaders: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    folders: tuple[PackFolder, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    weights: tuple[PackWeight, ...] = ()
    needs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    chosen: Mapping[str, Mapping[str, Mapping[str, str]]] = field(default_factory=dict)
    hidden_weights: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"Pack(name={self.name!r}, commit={self.commit[:7]!r}, install={self.install})"

    def loader_inputs(self) -> dict[str, dict[str, str]]:
        """`loaders` with numbered ranges written out: `lora_name_{1..3}` is lora_name_1 .. lora_name_3."""
        return {
            class_type: {name: folder for raw, folder in inputs.items() for name in expand_inputs(raw)}
            for class_type, inputs in self.loaders.items()
        }

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "repository": self.repository,
            "commit": self.commit,
            "install": self.install,
        }
        if self.requirements is not None:
            out["requirements"] = list(self.requirements)
        optional: dict[str, Any] = {
            "clones": [clone.to_json() for clone in self.clones],
            "supersedes": list(self.supersedes),
            "classes": list(self.classes),
            "loaders": {k: dict(sorted(v.items())) for k, v in sorted(self.loaders.items())},
            "folders": {f.name: f.to_json() for f in sorted(self.folders, key=lambda f: f.name)},
            "env": dict(sorted(self.env.items())),
            "weights": [w.to_json() for w in sorted(self.weights, key=lambda w: w.entry.key)],
            "needs": {k: list(v) for k, v in sorted(self.needs.items())},
            "chosen": {
                c: {i: dict(sorted(v.items())) for i, v in sorted(inputs.items())}
                for c, inputs in sorted(self.chosen.items())
            },
            "hidden_weights": dict(sorted(self.hidden_weights.items())),
            "notes": list(self.notes),
        }
        out.update({key: value for key, value in optional.items() if value})
        return out


@dataclass(frozen=True, eq=False)
class Lock:
    """Validated packs, sorted by name; `comfyui_commit` is the ComfyUI the pins were chosen against."""

    packs: tuple[Pack, ...]
    comfyui_commit: str | None = None
    notes: tuple[str, ...] = ()
    source: str = ""

    @property
    def names(self) -> list[str]:
        return [pack.name for pack in self.packs]

    def pack(self, name: str, *, setting: str = "") -> Pack:
        """The pack `name`; raises `UnknownPackError` listing the lock's packs."""
        for pack in self.packs:
            if pack.name == name:
                return pack
        raise UnknownPackError(name, self.names, setting=setting)

    def default_selection(self) -> list[Pack]:
        """The packs marked `install: true`, the ones an image gets unless told otherwise."""
        return [pack for pack in self.packs if pack.install]

    def select(self, names: Iterable[str], *, setting: str = "") -> list[Pack]:
        """Packs by name, in lock order, each once; raises `UnknownPackError` for a name not in the lock."""
        wanted = {self.pack(name, setting=setting).name for name in names}
        return [pack for pack in self.packs if pack.name in wanted]

    def selection(self, choice: Sequence[str], *, setting: str = "") -> list[Pack]:
        """`("default",)`: the default selection; `("all",)`, `("none",)`, or pack names."""
        if tuple(choice) == ("default",):
            return self.default_selection()
        if tuple(choice) == ("all",):
            return list(self.packs)
        if tuple(choice) == ("none",):
            return []
        return self.select(choice, setting=setting)

    def as_manifest(self) -> Manifest:
        """The weights side of every pack: their run-time weights as entries, loaders, needs and the
        folders found at `<WEIGHTS_DIR>/<folder>`. Merge it over the weights manifest
        (`manifest.merged(lock.as_manifest())`). Raises `LockError` when two packs map one class's
        input to different folders, or `ManifestError` when entries clash."""
        loaders: dict[str, dict[str, str]] = {}
        owner: dict[tuple[str, str], str] = {}
        for pack in self.packs:
            for class_type, inputs in pack.loader_inputs().items():
                for input_name, folder in inputs.items():
                    seen = loaders.setdefault(class_type, {}).setdefault(input_name, folder)
                    first = owner.setdefault((class_type, input_name), pack.name)
                    if seen != folder:
                        raise LockError(
                            f"{class_type}.{input_name} is '{seen}' in pack {first} and '{folder}' here",
                            path=self.source,
                            pack=pack.name,
                            field="loaders",
                        )
        needs: dict[str, dict[str, None]] = {}
        chosen: dict[str, dict[str, dict[str, str]]] = {}
        for pack in self.packs:
            for class_type, keys in pack.needs.items():
                needs.setdefault(class_type, {}).update(dict.fromkeys(keys))
            for class_type, by_input in pack.chosen.items():
                for input_name, picks in by_input.items():
                    chosen.setdefault(class_type, {}).setdefault(input_name, {}).update(picks)
        return Manifest.build(
            [weight.entry for pack in self.packs for weight in pack.weights],
            [],
            loaders,
            needs=needs,
            chosen=chosen,
            folders=[f.name for pack in self.packs for f in pack.folders if f.path == f.name],
            source=self.source,
        )

    def folder_paths(self) -> dict[str, str]:
        """Pack folders kept elsewhere than `<WEIGHTS_DIR>/<folder>`: folder → directory under it."""
        return {f.name: f.path for pack in self.packs for f in pack.folders if f.path != f.name}

    def targets(self) -> dict[str, str]:
        """Weight entry key → where its pack opens it, relative to the ComfyUI directory."""
        return {w.entry.key: w.target for pack in self.packs for w in pack.weights if w.target is not None}

    def comfyui_env(self, weights_dir: Path | str) -> dict[str, str]:
        """The environment variables packs read, with `{weights_dir}` filled in (an absolute path)."""
        root = str(Path(weights_dir).absolute())
        return {
            name: template.replace("{weights_dir}", root)
            for pack in self.packs
            for name, template in sorted(pack.env.items())
        }

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
        if self.comfyui_commit:
            out["comfyui_commit"] = self.comfyui_commit
        if self.notes:
            out["notes"] = list(self.notes)
        out["packs"] = [pack.to_json() for pack in self.packs]
        return out

    def dumps(self) -> str:
        """Canonical, byte-stable JSON text of this lock."""
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n"


def load_lock(path: Path | str) -> Lock:
    """Load and validate the lock at `path`; raises `LockError` naming the file, pack and field."""
    return parse_lock(read_json_file(Path(path), LockError), source=str(path))


def parse_lock(data: Any, *, source: str = "") -> Lock:
    """Validate a decoded lock document; see `load_lock`."""
    doc = parse_lock_document(data, source=source, schema_version=SCHEMA_VERSION)
    check_across_packs(doc.packs, source=source)
    packs = []
    for raw in doc.packs:
        packs.append(
            Pack(
                name=raw.name,
                repository=raw.repository,
                commit=raw.commit,
                install=raw.install,
                requirements=raw.requirements,
                clones=tuple(Clone(**clone) for clone in raw.clones),
                supersedes=raw.supersedes,
                classes=raw.classes,
                loaders=raw.loaders,
                folders=tuple(PackFolder(name=n, path=p, extensions=e) for n, p, e in raw.folders),
                env=raw.env,
                weights=tuple(PackWeight(entry=entry, target=target) for entry, target in raw.weights),
                needs=raw.needs,
                chosen=raw.chosen,
                hidden_weights=raw.hidden_weights,
                notes=raw.notes,
            )
        )
    lock = Lock(
        packs=tuple(sorted(packs, key=lambda p: p.name.lower())),
        comfyui_commit=doc.comfyui_commit,
        notes=doc.notes,
        source=source,
    )
    lock.as_manifest()  # loader conflicts and needs that name no weight fail here, at load
    return lock
