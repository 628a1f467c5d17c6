"""`add`: a weight given by its URL, written as a pinned entry into the user's manifest in one command.

What the entry's size and sha256 come from depends on the host:

- Hugging Face (a `resolve` or `blob` URL, `hf://`): the resolve answer's linked headers, read with one
  HEAD and no byte of the file (`hostfacts.hugging_face_facts`); licence and gating from the model API
  (`/api/models/<repo>`: `cardData.license`, `gated`).
- CivitAI (a model page, version page or download URL): the API's sha256 of the version's primary
  file, its exact size from one request for the download's first byte, permissions from the model.
- Any other host, or CivitAI without a sha256: the file is downloaded through the downloader into
  `<WEIGHTS_DIR>/<folder>/<name>`, where it will be used, and hashed.

The entry goes into the manifest named by `WEIGHTS_MANIFEST_EXTRA` (or `--manifest-extra`), created if
missing, written whole as `Manifest.dumps()` (byte-stable) after the merged manifest validates; an
entry of the same `folder/name` there is replaced. `--kit K` adds it to kit K of that manifest (a copy
of the built-in kit K if there is one, since a user kit replaces a built-in kit of its name; else a new
kit). Arguments (URL, `--folder`, `--name`, `--kit`) are checked before any request. `--dry-run` prints
the entry, validated as add would validate it, and writes nothing (and downloads nothing: for a host that
states no hash or size, the entry shows `null` there). A file whose host states no sha256 or no exact
size is downloaded and hashed (against the sha256 CivitAI states, when it states one).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from weightkit.civitai import civitai_ids, resolve_civitai
from weightkit.cli.common import EXIT_BAD_INPUT, EXIT_OK, Context, print_json
from weightkit.download import FetchRequest
from weightkit.download.hostfacts import get_json, hugging_face_facts, probe_size
from weightkit.download.httprange import AuthError, RetryableError, SourceError
from weightkit.download.urls import on_hugging_face
from weightkit.errors import AddWeightError, ManifestError
from weightkit.folders import COMFYUI_FOLDERS, canonical_folder, has_model_extension
from weightkit.jsonfile import read_json_file
from weightkit.manifest import Kit, Manifest, WeightEntry
from weightkit.manifest_file import load_manifest, parse_entry, parse_manifest
from weightkit.settings import DownloadSettings
from weightkit.units import format_bytes
from weightkit.urlforms import display_url, normalise_weight_url, safe_file_name, url_problem

__all__ = ["configure_add", "run_add"]

log = logging.getLogger(__name__)

_NON_COMMERCIAL = re.compile(r"(^|[-_ ])nc([-_ ]|$)|non-?commercial", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Found:
    """What the host says about the file at `url` (the URL the entry will list)."""

    url: str
    hash_from: str  # who states the sha256: huggingface, civitai; computed when it must be hashed here
    size: int | None = None
    sha256: str | None = None
    name: str | None = None
    folder: str | None = None
    license: str | None = None
    non_commercial: bool = False
    gated: bool = False
    notes: str | None = None


def configure_add(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "url", metavar="URL", help="the file's URL: Hugging Face, hf://, CivitAI page, or any"
    )
    parser.add_argument("--folder", help="its model folder (e.g. loras); CivitAI's model type when not given")
    parser.add_argument("--name", help="the file name workflows use (default: the host's file name)")
    parser.add_argument("--kit", help="also add it to this kit of your manifest")
    parser.add_argument("--dry-run", action="store_true", help="print the entry, write and download nothing")
    parser.set_defaults(_creates_manifest_extra=True)


def run_add(args: argparse.Namespace, context: Context) -> int:
    store = context.store
    extra = store.settings.manifest_extra
    if extra is None:
        print(
            "error: add writes into your own manifest: name it with WEIGHTS_MANIFEST_EXTRA or "
            "--manifest-extra (it is created if missing).",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    url, problem = _checked_arguments(args)
    if problem is None:
        found = _found(url, store.settings.download)
        name = args.name or found.name or _file_name(url)
        folder = canonical_folder(args.folder or found.folder or "")
        problem = _bad_arguments(name, folder, args.kit, found.url)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.dry_run:
        return _dry_run(found, name, folder, args.kit, context)
    if found.sha256 is None or found.size is None:
        found = _downloaded(found, store.settings.weights_dir / folder / name, context)
    entry = parse_entry(_raw_entry(found, name, folder), where=f"the entry for {display_url(url)}")
    _write(extra, entry, args.kit, store.manifest, store.settings.manifest_path)
    kit = f", kit {args.kit}" if args.kit else ""
    print(
        f"Added {entry.key} ({format_bytes(entry.size)}, sha256 {_vouched(found.hash_from)}) to {extra}{kit}."
    )
    return EXIT_OK


def _checked_arguments(args: argparse.Namespace) -> tuple[str, str | None]:
    """The URL to ask its host about, and why the arguments cannot make an entry (None when they may):
    checked before any request, so a typo costs no network round trip and reads as itself."""
    problem = url_problem(args.url)
    if problem is not None:
        return args.url, (
            f"the URL {display_url(args.url.strip())!r} {problem}. Give the URL of the weight file: a "
            "Hugging Face resolve or blob URL, hf://<org>/<repo>/<path>, a CivitAI page, or any http(s) URL."
        )
    url = args.url.strip() if civitai_ids(args.url) is not None else normalise_weight_url(args.url)
    if civitai_ids(url) is not None:  # CivitAI's API may name the file and its folder
        return url, _bad_arguments(args.name, args.folder and canonical_folder(args.folder), args.kit, url)
    return url, _bad_arguments(
        args.name or _file_name(url), canonical_folder(args.folder or ""), args.kit, url
    )


def _dry_run(found: Found, name: str, folder: str, kit: str | None, context: Context) -> int:
    """Print the entry add would write, validated as add validates it, the merged manifest included;
    what a download would fill in (size, sha256) is validated as a placeholder and printed as null."""
    store = context.store
    extra = store.settings.manifest_extra
    assert extra is not None
    raw = _raw_entry(found, name, folder)
    stated = found.sha256 is not None and found.size is not None
    filled = raw if stated else {**raw, "size": found.size or 1, "sha256": found.sha256 or "0" * 64}
    entry = parse_entry(filled, where=f"the entry for {display_url(found.url)}")
    _write(extra, entry, kit, store.manifest, store.settings.manifest_path, dry_run=True)
    print_json(raw)
    if not stated:
        print(
            "(dry run: the host states no size or sha256; add downloads and hashes the file)", file=sys.stderr
        )
    print(f"(dry run: nothing written to {extra})", file=sys.stderr)
    return EXIT_OK


# ---- what the host says -----------------------------------------------------------------------------


def _found(url: str, settings: DownloadSettings) -> Found:
    """Ask the URL's host what it states about the file; raises `AddWeightError` when it cannot say."""
    try:
        if on_hugging_face(url):
            return _from_hugging_face(url, settings)
        if civitai_ids(url) is not None:
            return _from_civitai(url, settings)
        return Found(url, "computed", size=probe_size(url, settings=settings))
    except AuthError as exc:
        variable = exc.credential.env_var if exc.credential is not None else "the host's token"
        raise AddWeightError(
            url, exc.reason, f"The host wants a token: set {variable} and run add again."
        ) from exc
    except (SourceError, RetryableError) as exc:
        raise AddWeightError(url, exc.reason, _advice(url, settings)) from exc


def _from_hugging_face(url: str, settings: DownloadSettings) -> Found:
    facts = hugging_face_facts(url, settings=settings)
    license_, gated = _card(url, settings)
    return Found(
        url,
        "huggingface",
        size=facts.size,
        sha256=facts.sha256,
        name=_file_name(url),
        license=license_,
        non_commercial=bool(license_ and _NON_COMMERCIAL.search(license_)),
        gated=gated,
    )


def _card(url: str, settings: DownloadSettings) -> tuple[str | None, bool]:
    """The repository's licence and whether it is gated, from the Hub's API; (None, False) if it cannot
    say (the entry then says so: license null)."""
    path = urlsplit(url).path.strip("/").split("/")
    repo = path[: path.index("resolve")]
    kind = {"datasets": "datasets", "spaces": "spaces"}.get(repo[0], "models") if repo else "models"
    repo = repo[1:] if kind != "models" else repo
    api = f"https://huggingface.co/api/{kind}/{'/'.join(repo)}"
    try:
        info = get_json(api, settings=settings)
    except (SourceError, RetryableError) as exc:
        log.warning("Could not read the licence of %s from %s: %s", display_url(url), api, exc.reason)
        return None, False
    card = info.get("cardData") if isinstance(info, dict) else None
    card = card if isinstance(card, dict) else {}
    license_ = card.get("license")
    license_ = license_[0] if isinstance(license_, list) and license_ else license_
    if license_ == "other" and isinstance(card.get("license_name"), str):
        license_ = card["license_name"]
    gated = isinstance(info, dict) and info.get("gated") not in (None, False, "false")
    return (license_ if isinstance(license_, str) and license_.strip() else None), gated


def _from_civitai(url: str, settings: DownloadSettings) -> Found:
    file = resolve_civitai(url, settings=settings, send_credentials=True, permissions=True)
    size = probe_size(file.download_url, settings=settings)
    if size is not None and file.size_kb is not None and abs(size - file.size_kb * 1024) > 1024:
        raise AddWeightError(
            url,
            f"CivitAI's API says its file is about {file.size_kb:.0f} KB, its download is {size} bytes",
            "The download is not the file the API describes; try the version's own page.",
        )
    allowed = ", ".join(file.commercial_use) if file.commercial_use else "none"
    notes = f"CivitAI model {file.model_id} ({file.model_name}), version {file.version_id}"
    if file.commercial_use is not None:
        notes += f"; commercial use allowed: {allowed}"
    return Found(
        file.download_url,
        "civitai" if file.sha256 else "computed",
        size=size,
        sha256=file.sha256,
        name=safe_file_name(file.name) if file.name else None,
        folder=file.folder,
        non_commercial=file.non_commercial,
        notes=notes,
    )


def _downloaded(found: Found, dest: Path, context: Context) -> Found:
    """`found` with the size and sha256 of the file downloaded to `dest` (where it will be used)."""
    if dest.exists():
        raise AddWeightError(
            found.url,
            f"a file is already at {dest}, and add cannot tell whether it came from this URL",
            "Move it away, or give --name to store the download under another name, and run add again.",
        )
    request = FetchRequest.for_url(
        found.url, dest, sha256=found.sha256, hash_from=found.hash_from, unpack=False
    )
    result = context.store.downloader.fetch(request)
    return dataclasses.replace(found, size=result.size, sha256=result.sha256)


# ---- the entry and the manifest ---------------------------------------------------------------------


def _bad_arguments(name: str | None, folder: str | None, kit: str | None, url: str) -> str | None:
    """Why the name, folder or kit cannot make an entry, as a sentence; None when they can. A name or
    folder of None is the host's to say (CivitAI's API), checked once it has."""
    if folder == "":
        return (
            "say which model folder the file goes in with --folder (loras, checkpoints, vae, ...): "
            f"the host does not say what {display_url(url)} is."
        )
    skeleton = {
        "name": name or "x.safetensors",
        "folder": folder or "loras",
        "size": 1,
        "sha256": "0" * 64,
        "urls": ["https://example.invalid/x"],
        "license": None,
        "non_commercial": False,
        "gated": False,
    }
    try:
        parse_entry(skeleton, where="add")
        if kit is not None:
            kits = {kit: {"description": "-", "weights": ["a/b"]}}
            parse_manifest({"schema_version": 1, "kits": kits}, check_kits=False)
    except ManifestError as exc:
        what = {"folder": f"--folder {folder!r}", "name": f"the name {name!r}"}.get(
            exc.field or "", f"--kit {kit!r}"
        )
        return f"{what} is not valid: {str(exc).partition(': ')[2]}"
    if name is not None and not has_model_extension(name):
        return (
            f"the name {name!r} has no model file extension (.safetensors, .pt, ...): give one with --name."
        )
    if folder is not None and folder not in COMFYUI_FOLDERS:
        log.warning("%s is not one of ComfyUI's own folders; fine if a custom node reads it", folder)
    return None


def _raw_entry(found: Found, name: str, folder: str) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "name": name,
        "folder": folder,
        "size": found.size,
        "sha256": found.sha256,
        "urls": [found.url],
        "license": found.license,
        "non_commercial": found.non_commercial,
        "gated": found.gated,
    }
    if found.notes:
        raw["notes"] = found.notes
    return raw


def _write(
    path: Path, entry: WeightEntry, kit: str | None, merged: Manifest, builtin: Path, *, dry_run: bool = False
) -> None:
    """Add `entry` (and its kit) to the user manifest at `path`, validated, written atomically; with
    `dry_run`, validated the same way (in a scratch directory) and not written."""
    user = _user_manifest(path)
    if entry.key in user.entries:
        print(f"note: replacing the entry {entry.key} of {path}", file=sys.stderr)
    elif entry.key in merged.entries:
        print(f"note: {entry.key} overrides the entry of the built-in manifest", file=sys.stderr)
    kits = dict(user.kits)
    if kit is not None:
        base = kits.get(kit) or merged.kits.get(kit)
        description = base.description if base else "Added by `python -m weightkit add`."
        weights = tuple(dict.fromkeys((*(base.weights if base else ()), entry.key)))
        kits[kit] = Kit(name=kit, description=description, weights=weights)
    entries = [e for e in user.entries.values() if e.key != entry.key] + [entry]
    updated = Manifest.build(entries, kits.values(), user.loaders, check_kits=False)
    text = updated.dumps()
    if dry_run:
        with tempfile.TemporaryDirectory() as scratch:
            trial = Path(scratch) / path.name
            trial.write_text(text, encoding="utf-8")
            load_manifest(builtin, trial)  # the merged manifest must validate, kits and all
        return
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.parent.mkdir(parents=True, exist_ok=True)
    try:
        temporary.write_text(text, encoding="utf-8")
        load_manifest(builtin, temporary)  # the merged manifest must validate, kits and all
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _user_manifest(path: Path) -> Manifest:
    """The user manifest alone (its kits may name built-in weights), or an empty one if missing."""
    if not path.exists():
        return Manifest.build([], [])
    return parse_manifest(read_json_file(path, ManifestError), source=str(path), check_kits=False)


def _file_name(url: str) -> str:
    return safe_file_name(unquote(urlsplit(url).path).rsplit("/", 1)[-1])


def _vouched(hash_from: str) -> str:
    return {"huggingface": "stated by Hugging Face", "civitai": "stated by CivitAI"}.get(
        hash_from, "of the downloaded file"
    )


def _advice(url: str, settings: DownloadSettings) -> str:
    if on_hugging_face(url):
        return (
            f"Check the URL (a file of a repository), the network and WEIGHTS_HF_ENDPOINT "
            f"({settings.hf_endpoint}); Hugging Face states the size and sha256 of every LFS file."
        )
    if civitai_ids(url) is not None:
        return f"Check the URL, the network and WEIGHTS_CIVITAI_ENDPOINT ({settings.civitai_endpoint})."
    return "Check the URL and the network."
