"""The weights manifest: every known weight file, where it lives, how to fetch and verify it, and kits.

A manifest is a versioned JSON document (see `docs/ROBUST_WEIGHT_LOADING.md` for the schema). Loading
validates all of it and names the entry and field that is wrong. A user manifest is merged over the
built-in one with the same schema and validation. `dumps()` is byte-stable: sorted entries, fixed key
order, so the committed file diffs cleanly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from weightkit.errors import ManifestError, UnknownKitError
from weightkit.folders import canonical_folder
from weightkit.loaders import LoaderMap, builtin_loader_map

__all__ = ["SCHEMA_VERSION", "Kit", "Manifest", "WeightEntry", "load_manifest", "name_is_safe"]

SCHEMA_VERSION = 1

_SHA256 = re.compile(r"[0-9a-f]{64}")
_FOLDER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_KIT = re.compile(r"[a-z0-9][a-z0-9._-]*")
_DRIVE = re.compile(r"[A-Za-z]:")
_SAFETENSORS_SPELLINGS = (".safetensors", ".sft")

_WEIGHT_FIELDS = (
    "name",
    "folder",
    "size",
    "sha256",
    "urls",
    "license",
    "non_commercial",
    "gated",
    "aliases",
    "notes",
)
_REQUIRED_WEIGHT_FIELDS = ("name", "folder", "size", "sha256", "urls", "license", "non_commercial", "gated")


@dataclass(frozen=True, kw_only=True)
class WeightEntry:
    """One weight file: `name` is what workflows write, relative to its ComfyUI `folder`."""

    name: str
    folder: str
    size: int
    sha256: str
    urls: tuple[str, ...]
    license: str | None
    non_commercial: bool
    gated: bool
    aliases: tuple[str, ...] = ()
    notes: str | None = None

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

    `needs` and `folders` come from custom node packs (not from the manifest file): `needs` maps a node
    class to the weights (entry keys) it loads on its own when it runs, so a workflow using the class
    requires them; `folders` are model folder types the packs register, searched like ComfyUI's own.
    """

    entries: Mapping[str, WeightEntry]
    kits: Mapping[str, Kit]
    loaders: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    needs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    folders: tuple[str, ...] = ()
    # The built-in loader map with `loaders` over it: what extraction and the predictor read.
    loader_map: LoaderMap = field(default_factory=builtin_loader_map, repr=False, compare=False)
    _by_name: Mapping[tuple[str, str], WeightEntry] = field(default_factory=dict, repr=False)
    _by_bare_name: Mapping[str, tuple[WeightEntry, ...]] = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls,
        entries: Iterable[WeightEntry],
        kits: Iterable[Kit],
        loaders: Mapping[str, Mapping[str, str]] | None = None,
        *,
        needs: Mapping[str, Iterable[str]] | None = None,
        folders: Iterable[str] = (),
        source: str = "",
        check_kits: bool = True,
    ) -> Manifest:
        """Index and cross-check entries, kits and needs; raises `ManifestError` on any conflict.

        `check_kits=False` defers the check that kits (and needs) name real weights, for a user manifest
        whose kits name built-in weights: the merged manifest is checked instead.
        """
        by_key: dict[str, WeightEntry] = {}
        for entry in entries:
            by_key[entry.key] = entry
        ordered = sorted(by_key.values(), key=lambda e: e.key)
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
        # Other spellings (.sft for .safetensors) resolve too, unless a name or alias claims them.
        by_name: dict[tuple[str, str], WeightEntry] = {}
        for (folder, spelling), entry in explicit.items():
            for variant in _spellings(spelling):
                by_name.setdefault((folder, variant), entry)
        by_name.update(explicit)
        bare: dict[str, list[WeightEntry]] = {}
        for (_, variant), entry in by_name.items():
            owners = bare.setdefault(variant, [])
            if entry not in owners:
                owners.append(entry)
        kit_map = {kit.name: kit for kit in kits}
        needed = {class_type: tuple(keys) for class_type, keys in sorted((needs or {}).items())}
        for class_type, keys in needed.items() if check_kits else ():
            for key in keys:
                if key not in by_key:
                    raise ManifestError(
                        f"needed weight '{key}' is not a weight of this manifest (write it as folder/name)",
                        path=source,
                        entry=f"node class {class_type}",
                        field="needs",
                    )
        for kit in kit_map.values() if check_kits else ():
            for ref in kit.weights:
                if ref not in by_key:
                    raise ManifestError(
                        f"kit weight '{ref}' is not a weight of this manifest (write it as folder/name)",
                        path=source,
                        entry=f"kit {kit.name}",
                        field="weights",
                    )
        custom = {k: dict(v) for k, v in sorted((loaders or {}).items())}
        return cls(
            entries=dict(sorted(by_key.items())),
            kits=dict(sorted(kit_map.items())),
            loaders=custom,
            needs=needed,
            folders=tuple(dict.fromkeys(canonical_folder(f) for f in folders)),
            loader_map=builtin_loader_map().merged(custom),
            _by_name=by_name,
            _by_bare_name={k: tuple(v) for k, v in bare.items()},
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


def load_manifest(path: Path | str, extra: Path | str | None = None) -> Manifest:
    """Load and validate the manifest at `path`, merged with the optional user manifest `extra`.

    Raises `ManifestError` naming the file, entry and field for anything malformed.
    """
    manifest = _load_one(Path(path))
    if extra is not None:
        manifest = manifest.merged(_load_one(Path(extra), check_kits=False), source=str(extra))
    return manifest


def _load_one(path: Path, *, check_kits: bool = True) -> Manifest:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"cannot read the file ({exc.strerror or exc})", path=source) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", path=source
        ) from exc
    return parse_manifest(data, source=source, check_kits=check_kits)


def parse_manifest(data: Any, *, source: str = "", check_kits: bool = True) -> Manifest:
    """Validate a decoded manifest document; see `load_manifest`."""
    if not isinstance(data, dict):
        raise ManifestError("the top level must be a JSON object", path=source)
    unknown = sorted(set(data) - {"schema_version", "weights", "kits", "loaders"})
    if unknown:
        raise ManifestError(f"unknown top-level field(s) {unknown}", path=source)
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ManifestError(
            f"schema_version must be {SCHEMA_VERSION}, got {version!r}", path=source, field="schema_version"
        )
    weights = data.get("weights", [])
    if not isinstance(weights, list):
        raise ManifestError("must be a list of weight objects", path=source, field="weights")
    entries: list[WeightEntry] = []
    seen: set[str] = set()
    for index, raw in enumerate(weights):
        entry = _parse_entry(raw, index, source)
        if entry.key in seen:
            raise ManifestError(
                "this folder/name appears twice",
                path=source,
                entry=f"weights[{index}] ({entry.key})",
                field="name",
            )
        seen.add(entry.key)
        entries.append(entry)
    kits = _parse_kits(data.get("kits", {}), source)
    loaders = _parse_loaders(data.get("loaders", {}), source)
    return Manifest.build(entries, kits, loaders, source=source, check_kits=check_kits)


def _parse_entry(raw: Any, index: int, source: str) -> WeightEntry:
    where = f"weights[{index}]"
    if not isinstance(raw, dict):
        raise ManifestError("must be an object", path=source, entry=where)
    if isinstance(raw.get("name"), str) and isinstance(raw.get("folder"), str):
        where = f"weights[{index}] ({raw['folder']}/{raw['name']})"

    def fail(field_name: str, message: str) -> ManifestError:
        return ManifestError(message, path=source, entry=where, field=field_name)

    for name in _REQUIRED_WEIGHT_FIELDS:
        if name not in raw:
            raise fail(name, "is required")
    unknown = sorted(set(raw) - set(_WEIGHT_FIELDS))
    if unknown:
        raise fail(unknown[0], f"unknown field (known: {', '.join(_WEIGHT_FIELDS)})")

    name = raw["name"]
    if not isinstance(name, str) or not name_is_safe(name):
        raise fail("name", f"{name!r} must be a relative path inside its folder (no '..', no leading '/')")
    folder = raw["folder"]
    if not isinstance(folder, str) or not _FOLDER.fullmatch(folder):
        raise fail("folder", f"{folder!r} must be a ComfyUI model folder name such as 'checkpoints'")
    size = raw["size"]
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise fail("size", f"{size!r} must be a positive whole number of bytes")
    sha256 = raw["sha256"]
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise fail("sha256", f"{sha256!r} must be 64 lowercase hexadecimal characters")
    urls = raw["urls"]
    if not isinstance(urls, list) or not urls:
        raise fail("urls", "must be a non-empty list of http(s) URLs, tried in order")
    for url in urls:
        if not isinstance(url, str) or not re.fullmatch(r"https?://[^\s/]+/\S*", url):
            raise fail("urls", f"{url!r} is not an http(s) URL")
    if len(set(urls)) != len(urls):
        raise fail("urls", "lists the same URL twice")
    license_ = raw["license"]
    if license_ is not None and (not isinstance(license_, str) or not license_.strip()):
        raise fail("license", "must be a license name or null when unknown")
    for flag in ("non_commercial", "gated"):
        if not isinstance(raw[flag], bool):
            raise fail(flag, f"{raw[flag]!r} must be true or false")
    aliases = raw.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) and name_is_safe(a) for a in aliases):
        raise fail("aliases", "must be a list of relative file names")
    if name in aliases or len(set(aliases)) != len(aliases):
        raise fail("aliases", "repeats a name")
    notes = raw.get("notes")
    if notes is not None and not isinstance(notes, str):
        raise fail("notes", "must be text")
    return WeightEntry(
        name=name,
        folder=canonical_folder(folder),
        size=size,
        sha256=sha256,
        urls=tuple(urls),
        license=license_,
        non_commercial=raw["non_commercial"],
        gated=raw["gated"],
        aliases=tuple(aliases),
        notes=notes,
    )


def _parse_kits(raw: Any, source: str) -> list[Kit]:
    if not isinstance(raw, dict):
        raise ManifestError("must be an object of kit name to kit", path=source, field="kits")
    kits = []
    for name, body in raw.items():
        where = f"kit {name}"
        if not _KIT.fullmatch(name):
            raise ManifestError(
                "kit names are lowercase letters, digits, '.', '_' and '-'", path=source, entry=where
            )
        if not isinstance(body, dict) or set(body) != {"description", "weights"}:
            raise ManifestError(
                "a kit is an object with exactly 'description' and 'weights'", path=source, entry=where
            )
        if not isinstance(body["description"], str) or not body["description"].strip():
            raise ManifestError("must say what the kit is for", path=source, entry=where, field="description")
        refs = body["weights"]
        if not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
            raise ManifestError(
                "must be a non-empty list of 'folder/name' strings", path=source, entry=where, field="weights"
            )
        if len(set(refs)) != len(refs):
            raise ManifestError("lists a weight twice", path=source, entry=where, field="weights")
        normalised = []
        for ref in refs:
            folder, _, weight_name = ref.partition("/")
            normalised.append(f"{canonical_folder(folder)}/{weight_name}")
        kits.append(Kit(name=name, description=body["description"], weights=tuple(normalised)))
    return kits


def _parse_loaders(raw: Any, source: str) -> dict[str, dict[str, str]]:
    """Custom loader nodes: `{class_type: {input_name: folder}}`, added to the built-in loader map."""
    if not isinstance(raw, dict):
        raise ManifestError(
            "must be an object of class_type to {input: folder}", path=source, field="loaders"
        )
    loaders: dict[str, dict[str, str]] = {}
    for class_type, inputs in raw.items():
        if (
            not isinstance(inputs, dict)
            or not inputs
            or not all(
                isinstance(k, str) and isinstance(v, str) and _FOLDER.fullmatch(v) for k, v in inputs.items()
            )
        ):
            raise ManifestError(
                "must map each input name to a model folder name",
                path=source,
                entry=f"loader {class_type}",
                field="loaders",
            )
        loaders[class_type] = {k: canonical_folder(v) for k, v in inputs.items()}
    return loaders
