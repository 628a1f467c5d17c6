"""The weights manifest: every known weight file, where it lives, how to fetch and verify it, and kits.

This module holds the validated values and their indexes; `manifest_file` reads and validates the
versioned JSON document (see `docs/ROBUST_WEIGHT_LOADING.md` for the schema). `dumps()` is byte-stable:
sorted entries, fixed key order, so the committed file diffs cleanly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from weightkit.errors import ManifestError, UnknownKitError, UnknownWeightError
from weightkit.folders import canonical_folder
from weightkit.loaders import LoaderMap, builtin_loader_map
from weightkit.urlforms import normalise_weight_url, url_problem

__all__ = ["SCHEMA_VERSION", "Kit", "Manifest", "WeightEntry", "name_is_safe"]

SCHEMA_VERSION = 1

_DRIVE = re.compile(r"[A-Za-z]:")
_SAFETENSORS_SPELLINGS = (".safetensors", ".sft")


@dataclass(frozen=True, kw_only=True)
class WeightEntry:
    """One weight file: `name` is what workflows write, relative to its ComfyUI `folder`."""

    name: str
    folder: str
    size: int | None  # None: Hugging Face states it (see `left_to_host`)
    sha256: str | None
    urls: tuple[str, ...]
    license: str | None
    non_commercial: bool
    gated: bool
    aliases: tuple[str, ...] = ()
    notes: str | None = None

    @property
    def left_to_host(self) -> bool:
        """True when the manifest leaves size or sha256 to the host (Hugging Face states both for every
        file it serves; the downloader verifies against what it says)."""
        return self.size is None or self.sha256 is None

    @property
    def key(self) -> str:
        """`folder/name`, unique in a manifest (one name may mean different files in two folders)."""
        return f"{self.folder}/{self.name}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "folder": self.folder,
            "size": self.size,
            "sha256": self.sha256,
            "urls": list(self.urls),
            "license": self.license,
            "non_commercial": self.non_commercial,
            "gated": self.gated,
        }
        if self.aliases:
            out["aliases"] = list(self.aliases)
        if self.notes:
            out["notes"] = self.notes
        return out


@dataclass(frozen=True, kw_only=True)
class Kit:
    """A named set of weights a deployment preloads together (`BASE_MODEL_KIT`)."""

    name: str
    description: str
    weights: tuple[str, ...]  # entry keys, `folder/name`


@dataclass(frozen=True)
class Manifest:
    """Validated weights, kits and custom loader mappings, indexed for constant-time lookup.

    `needs`, `chosen` and `folders` come from custom node packs (not from the manifest file): `needs`
    maps a node class to the weights (entry keys) it loads on its own when it runs, so a workflow using
    the class requires them; `chosen` maps a class's input to the weight each of its values makes the
    class load (`{"DWPreprocessor": {"bbox_detector": {"yolox_l.onnx": "annotators/.../yolox_l.onnx"}}}`);
    `folders` are model folder types the packs register, searched like ComfyUI's own.
    """

    entries: Mapping[str, WeightEntry]
    kits: Mapping[str, Kit]
    loaders: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    needs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    chosen: Mapping[str, Mapping[str, Mapping[str, str]]] = field(default_factory=dict)
    folders: tuple[str, ...] = ()
    # The built-in loader map with `loaders` over it: what extraction and the predictor read.
    loader_map: LoaderMap = field(default_factory=builtin_loader_map, repr=False, compare=False)
    _by_name: Mapping[tuple[str, str], WeightEntry] = field(default_factory=dict, repr=False)
    _by_bare_name: Mapping[str, tuple[WeightEntry, ...]] = field(default_factory=dict, repr=False)
    _by_url: Mapping[str, WeightEntry] = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls,
        entries: Iterable[WeightEntry],
        kits: Iterable[Kit],
        loaders: Mapping[str, Mapping[str, str]] | None = None,
        *,
        needs: Mapping[str, Iterable[str]] | None = None,
        chosen: Mapping[str, Mapping[str, Mapping[str, str]]] | None = None,
        folders: Iterable[str] = (),
        source: str = "",
        check_kits: bool = True,
    ) -> Manifest:
        """Index and cross-check entries, kits and needs; raises `ManifestError` on any conflict.

        `check_kits=False` defers the check that kits (and needs) name real weights, for a user manifest
        whose kits name built-in weights: the merged manifest is checked instead.
        """
        by_key = {entry.key: entry for entry in entries}
        ordered = sorted(by_key.values(), key=lambda e: e.key)
        by_name = _index_names(ordered, source)
        bare: dict[str, list[WeightEntry]] = {}
        for (_, variant), entry in by_name.items():
            owners = bare.setdefault(variant, [])
            if entry not in owners:
                owners.append(entry)
        kit_map = {kit.name: kit for kit in kits}
        needed = {class_type: tuple(keys) for class_type, keys in sorted((needs or {}).items())}
        picks = {c: {i: dict(v) for i, v in inputs.items()} for c, inputs in sorted((chosen or {}).items())}
        if check_kits:
            for class_type, keys in needed.items():
                _check_keys(keys, by_key, source, entry=f"node class {class_type}", field_name="needs")
            for class_type, inputs in picks.items():
                for values in inputs.values():
                    where = f"node class {class_type}"
                    _check_keys(values.values(), by_key, source, entry=where, field_name="chosen")
            for kit in kit_map.values():
                _check_keys(kit.weights, by_key, source, entry=f"kit {kit.name}", field_name="weights")
        custom = {k: dict(v) for k, v in sorted((loaders or {}).items())}
        return cls(
            entries=dict(sorted(by_key.items())),
            kits=dict(sorted(kit_map.items())),
            loaders=custom,
            needs=needed,
            chosen=picks,
            folders=tuple(dict.fromkeys(canonical_folder(f) for f in folders)),
            loader_map=builtin_loader_map().merged(custom),
            _by_name=by_name,
            _by_bare_name={k: tuple(v) for k, v in bare.items()},
            _by_url={normalise_weight_url(url): e for e in reversed(ordered) for url in e.urls},
        )

    def find(self, name: str, folder: str | None = None) -> WeightEntry | None:
        """The entry a workflow means by `name`: exact name, alias, or `.sft`/`.safetensors` spelling.

        Without a folder, a name that two folders define (e.g. `flux1-dev-fp8.safetensors`) is
        ambiguous and gives None; use `candidates()` to see them.
        """
        if folder is not None:
            return self._by_name.get((canonical_folder(folder), name))
        found = self._by_bare_name.get(name, ())
        return found[0] if len(found) == 1 else None

    def find_url(self, url: str) -> WeightEntry | None:
        """The entry one of whose URLs is `url`, in any form a user pastes (`urlforms`). Raises
        `UnknownWeightError` for a URL nothing can be fetched from (`urlforms.url_problem`): whoever
        looks a URL up is about to fetch it."""
        problem = url_problem(url)
        if problem is not None:
            raise UnknownWeightError(url.strip(), hint=f"It {problem}. Correct the URL and try again.")
        return self._by_url.get(normalise_weight_url(url))

    def candidates(self, name: str) -> tuple[WeightEntry, ...]:
        """Every entry, in any folder, that `name` could mean."""
        return self._by_bare_name.get(name, ())

    def kit(self, name: str) -> Kit:
        try:
            return self.kits[name]
        except KeyError:
            raise UnknownKitError(name, sorted(self.kits)) from None

    def kit_entries(self, name: str) -> list[WeightEntry]:
        """The weights of kit `name`, in the kit's order; raises `UnknownKitError`."""
        return [self.entries[key] for key in self.kit(name).weights]

    def merged(self, other: Manifest, *, source: str = "") -> Manifest:
        """`other` over this one: its entries replace same-key entries, its kits replace same-name kits,
        its loaders replace the same inputs, its needs the same classes; folders add up."""
        loaders = {k: dict(v) for k, v in self.loaders.items()}
        for class_type, inputs in other.loaders.items():
            loaders.setdefault(class_type, {}).update(inputs)
        return Manifest.build(
            [*self.entries.values(), *other.entries.values()],
            [*self.kits.values(), *other.kits.values()],
            loaders,
            needs={**self.needs, **other.needs},
            chosen={**self.chosen, **other.chosen},
            folders=(*self.folders, *other.folders),
            source=source,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "kits": {
                name: {"description": kit.description, "weights": list(kit.weights)}
                for name, kit in self.kits.items()
            },
            "loaders": {k: dict(sorted(v.items())) for k, v in self.loaders.items()},
            "weights": [entry.to_json() for entry in self.entries.values()],
        }

    def dumps(self) -> str:
        """Canonical, byte-stable JSON text of this manifest."""
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n"


def _index_names(ordered: Iterable[WeightEntry], source: str) -> dict[tuple[str, str], WeightEntry]:
    """`(folder, spelling) → entry` for every name and alias, then the other `.sft`/`.safetensors`
    spelling of each unless a name or alias claims it; raises `ManifestError` for a spelling two entries
    claim."""
    explicit: dict[tuple[str, str], WeightEntry] = {}
    for entry in ordered:
        for spelling in (entry.name, *entry.aliases):
            owner = explicit.setdefault((entry.folder, spelling), entry)
            if owner is not entry:
                raise ManifestError(
                    f"'{spelling}' names both {owner.key} and {entry.key}; a name or alias must "
                    "mean one file in its folder",
                    path=source,
                    entry=entry.key,
                    field="aliases",
                )
    by_name: dict[tuple[str, str], WeightEntry] = {}
    for (folder, spelling), entry in explicit.items():
        for variant in _spellings(spelling):
            by_name.setdefault((folder, variant), entry)
    by_name.update(explicit)
    return by_name


def _check_keys(
    keys: Iterable[str], by_key: Mapping[str, WeightEntry], source: str, *, entry: str, field_name: str
) -> None:
    what = {"weights": "kit weight", "needs": "needed weight"}.get(field_name, "chosen weight")
    for key in keys:
        if key not in by_key:
            raise ManifestError(
                f"{what} '{key}' is not a weight of this manifest (write it as folder/name)",
                path=source,
                entry=entry,
                field=field_name,
            )


def _spellings(name: str) -> tuple[str, ...]:
    """`x.safetensors` and `x.sft` are the same file to ComfyUI users; other names have one spelling."""
    lower = name.lower()
    for ext in _SAFETENSORS_SPELLINGS:
        if lower.endswith(ext):
            stem = name[: -len(ext)]
            return (name, *(stem + other for other in _SAFETENSORS_SPELLINGS if other != ext))
    return (name,)


def name_is_safe(name: str) -> bool:
    """A relative POSIX path that stays inside its folder: no absolute path, no `..`, no backslash."""
    if not name or name != name.strip() or "\\" in name or "\x00" in name:
        return False
    if name.startswith("/") or _DRIVE.match(name):
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))
