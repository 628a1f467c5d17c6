"""Validation of a decoded `custom_nodes.json`: every field of every pack, each error naming pack and field.

Weights are checked by weightkit's own manifest parser, so a pack's weight is valid exactly when the
same object would be valid in `weights_manifest.json`; only `target` is the lock's own. What packs may
not claim together (a name, a repository, a class, an environment variable) is `nodekit.lockrules`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from nodekit.errors import LockError
from weightkit.errors import ManifestError
from weightkit.folders import canonical_folder
from weightkit.manifest import WeightEntry, name_is_safe
from weightkit.manifest_file import parse_entry

__all__ = ["LockDocument", "RawPack", "expand_inputs", "parse_lock_document", "repository_key"]

_PACK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_REPOSITORY = re.compile(r"https://[^\s/]+/\S+")
_FOLDER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_ENV_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"(?P<head>[^{}]*)\{(?P<first>\d+)\.\.(?P<last>\d+)\}(?P<tail>[^{}]*)")
_EXTENSION = re.compile(r"\.[A-Za-z0-9_.-]+")
_TOP_FIELDS = ("schema_version", "comfyui_commit", "notes", "packs")
_PACK_FIELDS = (
    "name",
    "repository",
    "commit",
    "install",
    "requirements",
    "clones",
    "supersedes",
    "classes",
    "loaders",
    "folders",
    "env",
    "weights",
    "needs",
    "chosen",
    "hidden_weights",
    "notes",
)
_MAX_RANGE = 1000


@dataclass(frozen=True)
class RawPack:
    """A pack's fields, validated, before they become a `nodekit.lock.Pack`."""

    name: str
    repository: str
    commit: str
    install: bool
    requirements: tuple[str, ...] | None
    clones: tuple[dict[str, str], ...]
    supersedes: tuple[str, ...]
    classes: tuple[str, ...]
    loaders: dict[str, dict[str, str]]
    folders: tuple[tuple[str, str, tuple[str, ...]], ...]  # (name, path, extensions)
    env: dict[str, str]
    weights: tuple[tuple[WeightEntry, str | None], ...]  # (entry, target)
    needs: dict[str, tuple[str, ...]]
    chosen: dict[str, dict[str, dict[str, str]]]
    hidden_weights: dict[str, str]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class LockDocument:
    packs: tuple[RawPack, ...]
    comfyui_commit: str | None
    notes: tuple[str, ...]


def repository_key(url: str) -> str:
    """A repository URL reduced to `host/owner/name` (lowercase, no scheme, no `.git`), for comparing."""
    bare = re.sub(r"^[a-z+]+://", "", url.strip().lower()).removeprefix("www.")
    return bare.rstrip("/").removesuffix(".git").rstrip("/")


def expand_inputs(name: str) -> list[str]:
    """`lora_name_{1..3}` → lora_name_1, lora_name_2, lora_name_3 (`{01..04}`: 01 .. 04); others: as is."""
    match = _RANGE.fullmatch(name)
    if match is None:
        return [name]
    first, last = int(match["first"]), int(match["last"])
    width = len(match["first"]) if match["first"].startswith("0") else 0  # lora_{01..04}: lora_01 ...
    return [f"{match['head']}{i:0{width}d}{match['tail']}" for i in range(first, last + 1)]


def parse_lock_document(data: Any, *, source: str, schema_version: int) -> LockDocument:
    """Each field of the document and of each pack; raises `LockError` naming pack and field."""
    if not isinstance(data, dict):
        raise LockError("the top level must be a JSON object", path=source)
    unknown = sorted(set(data) - set(_TOP_FIELDS))
    if unknown:
        raise LockError(
            f"unknown top-level field(s) {unknown} (known: {', '.join(_TOP_FIELDS)})", path=source
        )
    if data.get("schema_version") != schema_version:
        raise LockError(
            f"schema_version must be {schema_version}, got {data.get('schema_version')!r}",
            path=source,
            field="schema_version",
        )
    commit = data.get("comfyui_commit")
    if commit is not None and (not isinstance(commit, str) or not _COMMIT.fullmatch(commit)):
        raise LockError("must be a 40-character lowercase hex commit", path=source, field="comfyui_commit")

    def bad_notes(message: str) -> NoReturn:
        raise LockError(message, path=source, field="notes")

    notes = _texts(data.get("notes", []), bad_notes)
    raw_packs = data.get("packs")
    if not isinstance(raw_packs, list):
        raise LockError("must be a list of pack objects", path=source, field="packs")
    packs = [_parse_pack(raw, index, source) for index, raw in enumerate(raw_packs)]
    return LockDocument(packs=tuple(packs), comfyui_commit=commit, notes=notes)


def _parse_pack(raw: Any, index: int, source: str) -> RawPack:
    if not isinstance(raw, dict):
        raise LockError(f"packs[{index}] must be an object", path=source)
    label = raw.get("name") if isinstance(raw.get("name"), str) else f"packs[{index}]"

    def fail(field: str, message: str) -> NoReturn:
        raise LockError(message, path=source, pack=label, field=field)

    for required in ("name", "repository", "commit", "install"):
        if required not in raw:
            fail(required, "is required")
    unknown = sorted(set(raw) - set(_PACK_FIELDS))
    if unknown:
        fail(unknown[0], f"unknown field (known: {', '.join(_PACK_FIELDS)})")
    name = raw["name"]
    if not isinstance(name, str) or not _PACK_NAME.fullmatch(name) or name.endswith(".disabled"):
        fail("name", f"{name!r} must be a directory name under custom_nodes/ (the repository's own name)")
    repository = _repository(raw["repository"], lambda m: fail("repository", m))
    commit = _commit(raw["commit"], lambda m: fail("commit", m))
    if not isinstance(raw["install"], bool):
        fail("install", "must be true (in the default selection) or false")
    requirements = raw.get("requirements")
    if requirements is not None:
        requirements = _texts(requirements, lambda m: fail("requirements", m))
    weights = _weights(raw.get("weights", []), source, lambda f, m: fail(f, m))
    folders = _folders(raw.get("folders", {}), lambda m: fail("folders", m))
    _check_extensions(weights, folders, lambda m: fail("weights", m))
    return RawPack(
        name=name,
        repository=repository,
        commit=commit,
        install=raw["install"],
        requirements=requirements,
        clones=_clones(raw.get("clones", []), lambda m: fail("clones", m)),
        supersedes=tuple(
            _repository(url, lambda m: fail("supersedes", m))
            for url in _list(raw.get("supersedes", []), lambda m: fail("supersedes", m))
        ),
        classes=_unique_texts(raw.get("classes", []), lambda m: fail("classes", m)),
        loaders=_loaders(raw.get("loaders", {}), lambda m: fail("loaders", m)),
        folders=folders,
        env=_env(raw.get("env", {}), lambda m: fail("env", m)),
        weights=weights,
        needs=_needs(raw.get("needs", {}), {entry.key for entry, _ in weights}, lambda m: fail("needs", m)),
        chosen=_chosen(
            raw.get("chosen", {}), {entry.key for entry, _ in weights}, lambda m: fail("chosen", m)
        ),
        hidden_weights=_text_map(raw.get("hidden_weights", {}), lambda m: fail("hidden_weights", m)),
        notes=_texts(raw.get("notes", []), lambda m: fail("notes", m)),
    )


Fail = Callable[[str], NoReturn]


def _list(value: Any, fail: Fail) -> list[Any]:
    if not isinstance(value, list):
        fail("must be a list")
    return value


def _texts(value: Any, fail: Fail) -> tuple[str, ...]:
    items = _list(value, fail)
    if not all(isinstance(item, str) and item.strip() and "\n" not in item for item in items):
        fail("must be a list of non-empty one-line strings")
    return tuple(items)


def _unique_texts(value: Any, fail: Fail) -> tuple[str, ...]:
    items = _texts(value, fail)
    if len(set(items)) != len(items):
        fail("lists a value twice")
    return items


def _repository(value: Any, fail: Fail) -> str:
    if not isinstance(value, str) or not _REPOSITORY.fullmatch(value):
        fail(f"{value!r} must be an https:// git URL such as https://github.com/owner/name.git")
    return value


def _commit(value: Any, fail: Fail) -> str:
    if not isinstance(value, str) or not _COMMIT.fullmatch(value):
        fail(f"{value!r} must be a full 40-character lowercase hex commit (a tag or branch moves)")
    return value


def _clones(value: Any, fail: Fail) -> tuple[dict[str, str], ...]:
    """Each clone at its own relative path inside the pack, never in a `.git` (git's own files)."""
    clones = []
    paths: set[str] = set()
    for item in _list(value, fail):
        if not isinstance(item, dict) or set(item) != {"path", "repository", "commit"}:
            fail("each clone is an object with exactly 'path', 'repository' and 'commit'")
        path = item["path"]
        if not isinstance(path, str) or not name_is_safe(path):
            fail(f"{path!r} must be a relative path inside the pack")
        if ".git" in path.lower().split("/"):
            fail(f"{path!r} is inside a .git directory, which is git's, not the pack's")
        if path in paths:
            fail(f"{path!r} is the path of two clones")
        paths.add(path)
        clones.append(
            {
                "path": item["path"],
                "repository": _repository(item["repository"], fail),
                "commit": _commit(item["commit"], fail),
            }
        )
    return tuple(clones)


def _loaders(value: Any, fail: Fail) -> dict[str, dict[str, str]]:
    if not isinstance(value, dict):
        fail("must be an object of class_type to {input: folder}")
    loaders: dict[str, dict[str, str]] = {}
    for class_type, inputs in value.items():
        if not isinstance(inputs, dict) or not inputs:
            fail(f"{class_type}: must map each input name to a model folder name")
        for input_name, folder in inputs.items():
            if not isinstance(folder, str) or not _FOLDER.fullmatch(folder):
                fail(f"{class_type}.{input_name}: {folder!r} is not a model folder name")
            if (
                not input_name
                or "*" in input_name
                or ("{" in input_name and _RANGE.fullmatch(input_name) is None)
            ):
                fail(
                    f"{class_type}: input {input_name!r} must be an input name, or numbered as name_{{1..50}}"
                )
            if len(expand_inputs(input_name)) > _MAX_RANGE or not expand_inputs(input_name):
                fail(
                    f"{class_type}: the range in {input_name!r} must run upwards, at most {_MAX_RANGE} inputs"
                )
        loaders[class_type] = {k: canonical_folder(v) for k, v in inputs.items()}
    return loaders


def _folders(value: Any, fail: Fail) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    if not isinstance(value, dict):
        fail("must be an object of folder name to {path, extensions}")
    folders = []
    for name, body in value.items():
        if (
            not _FOLDER.fullmatch(name)
            or not isinstance(body, dict)
            or not set(body) <= {"path", "extensions"}
        ):
            fail(f"{name}: must be a folder name mapped to an object with 'extensions' and optional 'path'")
        path = body.get("path", name)
        if not isinstance(path, str) or not name_is_safe(path):
            fail(f"{name}: path {path!r} must be a relative directory inside the weights directory")
        extensions = body.get("extensions", [])
        if not isinstance(extensions, list) or not all(
            isinstance(e, str) and _EXTENSION.fullmatch(e) for e in extensions
        ):
            fail(f"{name}: extensions must be a list such as ['.safetensors', '.pt'] (empty: any file)")
        folders.append((canonical_folder(name), path, tuple(extensions)))
    return tuple(folders)


def _env(value: Any, fail: Fail) -> dict[str, str]:
    env = _text_map(value, fail)
    for name, template in env.items():
        if not _ENV_NAME.fullmatch(name):
            fail(f"{name!r} must be an environment variable name (capitals, digits, '_')")
        unknown = [p for p in _PLACEHOLDER.findall(template) if p != "{weights_dir}"]
        if unknown:
            fail(f"{name}: {', '.join(unknown)} is not a known placeholder (only {{weights_dir}})")
    return env


def _text_map(value: Any, fail: Fail) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) and v.strip() for v in value.values()):
        fail("must be an object of names to non-empty strings")
    return dict(value)


def _weights(
    value: Any, source: str, fail: Callable[[str, str], NoReturn]
) -> tuple[tuple[WeightEntry, str | None], ...]:
    """Each weight is a manifest entry (weightkit's `parse_entry` checks it) plus an optional `target`."""
    weights: dict[str, tuple[WeightEntry, str | None]] = {}
    for index, item in enumerate(_list(value, lambda m: fail("weights", m))):
        where = f"weights[{index}]"
        if not isinstance(item, dict):
            fail(where, "must be a weights manifest entry (an object)")
        target = item.get("target")
        if target is not None and (not isinstance(target, str) or not name_is_safe(target)):
            fail(f"{where}.target", f"{target!r} must be a relative path inside the ComfyUI directory")
        try:
            entry = parse_entry({k: v for k, v in item.items() if k != "target"}, where=where, source=source)
        except ManifestError as exc:
            reason = str(exc).partition(": ")[2] or str(exc)
            fail(".".join(part for part in (exc.entry, exc.field) if part) or where, reason)
        if entry.key in weights:
            fail(where, f"{entry.key} appears twice")
        weights[entry.key] = (entry, target)
    return tuple(weights.values())


def _check_extensions(
    weights: tuple[tuple[WeightEntry, str | None], ...],
    folders: tuple[tuple[str, str, tuple[str, ...]], ...],
    fail: Fail,
) -> None:
    allowed = {name: extensions for name, _, extensions in folders if extensions}
    for entry, _ in weights:
        extensions = allowed.get(entry.folder)
        if extensions and not entry.name.lower().endswith(tuple(e.lower() for e in extensions)):
            fail(f"{entry.key}: the pack lists only {', '.join(extensions)} files in {entry.folder}")


def _needs(value: Any, weight_keys: set[str], fail: Fail) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict):
        fail("must be an object of class_type to ['folder/name', ...]")
    needs: dict[str, tuple[str, ...]] = {}
    for class_type, keys in value.items():
        if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
            fail(f"{class_type}: must be a non-empty list of 'folder/name' weights of this pack")
        for key in keys:
            folder, _, name = key.partition("/")
            if f"{canonical_folder(folder)}/{name}" not in weight_keys:
                fail(f"{class_type}: '{key}' is not one of this pack's weights (write it as folder/name)")
        needs[class_type] = tuple(
            f"{canonical_folder(k.partition('/')[0])}/{k.partition('/')[2]}" for k in keys
        )
    return needs


def _chosen(value: Any, weight_keys: set[str], fail: Fail) -> dict[str, dict[str, dict[str, str]]]:
    """`{class_type: {input: {value: "folder/name"}}}`: the weight each value of an input makes the class
    load (a detector picked by name, say), every one a weight of this pack."""
    if not isinstance(value, dict):
        fail("must be an object of class_type to {input: {value: 'folder/name'}}")
    chosen: dict[str, dict[str, dict[str, str]]] = {}
    for class_type, inputs in value.items():
        if not isinstance(inputs, dict) or not inputs:
            fail(f"{class_type}: must map each input to {{value: 'folder/name'}}")
        for input_name, picks in inputs.items():
            if (
                not isinstance(picks, dict)
                or not picks
                or not all(isinstance(k, str) for k in picks.values())
            ):
                fail(f"{class_type}.{input_name}: must map each value to a 'folder/name' weight of this pack")
            keys = {
                v: f"{canonical_folder(k.partition('/')[0])}/{k.partition('/')[2]}" for v, k in picks.items()
            }
            unknown = sorted(key for key in keys.values() if key not in weight_keys)
            if unknown:
                fail(f"{class_type}.{input_name}: '{unknown[0]}' is not one of this pack's weights")
            chosen.setdefault(class_type, {})[input_name] = keys
    return chosen
