"""Reading a weights manifest file: the versioned JSON document, validated in full.

Loading names the file, entry and field of anything wrong. A user manifest is merged over the built-in one
with the same schema and validation. An entry whose every URL is a Hugging Face resolve URL may leave its
`size` and `sha256` to the host (`null` or absent): Hugging Face states both for every file it serves, and
the downloader verifies the bytes against what it says. Anywhere else both are required.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from weightkit.errors import ManifestError
from weightkit.folders import canonical_folder
from weightkit.jsonfile import read_json_file
from weightkit.manifest import SCHEMA_VERSION, Kit, Manifest, WeightEntry, name_is_safe

__all__ = ["HF_HOSTS", "load_manifest", "parse_entry", "parse_manifest"]

# Hosts whose resolve answers state each file's exact size and sha256 (X-Linked-Size, X-Linked-ETag).
HF_HOSTS = frozenset({"huggingface.co", "hf.co"})

_SHA256 = re.compile(r"[0-9a-f]{64}")
_FOLDER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_KIT = re.compile(r"[a-z0-9][a-z0-9._-]*")
_URL = re.compile(r"https?://[^\s/]+/\S*")
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
_REQUIRED_WEIGHT_FIELDS = ("name", "folder", "urls", "license", "non_commercial", "gated")

Fail = Callable[[str, str], ManifestError]


def load_manifest(path: Path | str, extra: Path | str | None = None) -> Manifest:
    """Load and validate the manifest at `path`, merged with the optional user manifest `extra`.

    Raises `ManifestError` naming the file, entry and field for anything malformed.
    """
    manifest = _load_one(Path(path))
    if extra is not None:
        manifest = manifest.merged(_load_one(Path(extra), check_kits=False), source=str(extra))
    return manifest


def _load_one(path: Path, *, check_kits: bool = True) -> Manifest:
    return parse_manifest(read_json_file(path, ManifestError), source=str(path), check_kits=check_kits)


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
        entry = parse_entry(raw, where=f"weights[{index}]", source=source)
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


def parse_entry(raw: Any, *, where: str, source: str = "") -> WeightEntry:
    """One weight entry (an object of the manifest's `weights`, or of a custom node pack's); raises
    `ManifestError` naming `where` and the field."""
    if not isinstance(raw, dict):
        raise ManifestError("must be an object", path=source, entry=where)
    if isinstance(raw.get("name"), str) and isinstance(raw.get("folder"), str):
        where = f"{where} ({raw['folder']}/{raw['name']})"

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
    urls = _urls(raw["urls"], fail)
    size, sha256 = _size(raw.get("size"), fail), _sha256(raw.get("sha256"), fail)
    if (size is None or sha256 is None) and not all(_on_hugging_face(url) for url in urls):
        missing = "size" if size is None else "sha256"
        raise fail(
            missing,
            "may be left out only when every URL is a Hugging Face resolve URL "
            "(https://huggingface.co/<repo>/resolve/<revision>/<file>), whose host states the exact size and "
            "sha256; give both for other hosts",
        )
    license_ = raw["license"]
    if license_ is not None and (not isinstance(license_, str) or not license_.strip()):
        raise fail("license", "must be a license name or null when unknown")
    for flag in ("non_commercial", "gated"):
        if not isinstance(raw[flag], bool):
            raise fail(flag, f"{raw[flag]!r} must be true or false")
    notes = raw.get("notes")
    if notes is not None and not isinstance(notes, str):
        raise fail("notes", "must be text")
    return WeightEntry(
        name=name,
        folder=canonical_folder(folder),
        size=size,
        sha256=sha256,
        urls=urls,
        license=license_,
        non_commercial=raw["non_commercial"],
        gated=raw["gated"],
        aliases=_aliases(raw.get("aliases", []), name, fail),
        notes=notes,
    )


def _urls(urls: Any, fail: Fail) -> tuple[str, ...]:
    if not isinstance(urls, list) or not urls:
        raise fail("urls", "must be a non-empty list of http(s) URLs, tried in order")
    for url in urls:
        if not isinstance(url, str) or not _URL.fullmatch(url):
            raise fail("urls", f"{url!r} is not an http(s) URL")
    if len(set(urls)) != len(urls):
        raise fail("urls", "lists the same URL twice")
    return tuple(urls)


def _size(size: Any, fail: Fail) -> int | None:
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size <= 0):
        raise fail("size", f"{size!r} must be a positive whole number of bytes")
    return size


def _sha256(sha256: Any, fail: Fail) -> str | None:
    if sha256 is not None and (not isinstance(sha256, str) or not _SHA256.fullmatch(sha256)):
        raise fail("sha256", f"{sha256!r} must be 64 lowercase hexadecimal characters")
    return sha256


def _aliases(aliases: Any, name: str, fail: Fail) -> tuple[str, ...]:
    if not isinstance(aliases, list) or not all(isinstance(a, str) and name_is_safe(a) for a in aliases):
        raise fail("aliases", "must be a list of relative file names")
    if name in aliases or len(set(aliases)) != len(aliases):
        raise fail("aliases", "repeats a name")
    return tuple(aliases)


def _on_hugging_face(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "https" and (parts.hostname or "") in HF_HOSTS and "/resolve/" in parts.path


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
