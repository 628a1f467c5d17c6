"""Are a workflow's weights here? A stat per file on the happy path; a clear paragraph when they are not.

`check_weights` finds each `WeightRef` where ComfyUI would (`ModelPaths.locate`) and compares its size with
the manifest; it never reads a weight file. With `VerifiedRecords` it also reports what an earlier hash
established (`verified`, or a recorded hash that is not the manifest's). `verify_present` confirms the
sha256 of present files, hashing each file once and afterwards trusting its record while size and mtime
are unchanged. `missing_weights_error` turns a failed report into the error a user can act on.
"""

from __future__ import annotations

import difflib
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from weightkit.errors import MissingWeightsError
from weightkit.extract import WeightRef
from weightkit.folders import EMBEDDINGS, MODEL_EXTENSIONS
from weightkit.manifest import Manifest, WeightEntry
from weightkit.modelpaths import ModelPaths
from weightkit.units import format_bytes
from weightkit.urlforms import display_url
from weightkit.verified import VerifiedRecords

__all__ = [
    "CheckReport",
    "FoundWeight",
    "check_weights",
    "locate_weight",
    "missing_weights_error",
    "verify_present",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FoundWeight:
    """A required file found on disk: where, its size, and whether its sha256 is known to be right."""

    ref: WeightRef
    path: Path
    size: int
    verified: bool = False
    renamed_to: str | None = None  # found only under the manifest's own spelling: write this instead


@dataclass(frozen=True)
class CheckReport:
    """What a local check found, each list in the order of the refs checked.

    - `present`: found, and the manifest size when the manifest knows the file;
    - `missing`: not found in any directory ComfyUI searches;
    - `wrong_size`: found, but not the manifest's size (a partial download or another file);
    - `wrong_hash`: found at the right size, but its recorded sha256 is not the manifest's;
    - `unplaced`: a file name in a generic input that no manifest entry places (`ref.folder` is None):
      listed for the user, but neither checked nor fetchable, and not counted against `ok`.
    """

    present: tuple[FoundWeight, ...] = ()
    missing: tuple[WeightRef, ...] = ()
    wrong_size: tuple[FoundWeight, ...] = ()
    wrong_hash: tuple[FoundWeight, ...] = ()
    unplaced: tuple[WeightRef, ...] = ()

    @property
    def ok(self) -> bool:
        """Every placed file is here and, as far as is known, intact."""
        return not (self.missing or self.wrong_size or self.wrong_hash)

    @property
    def to_fetch(self) -> tuple[WeightRef, ...]:
        """Refs a fetch would repair: missing, wrong size or wrong hash, and described by the manifest."""
        broken = (*self.missing, *(f.ref for f in self.wrong_size), *(f.ref for f in self.wrong_hash))
        return tuple(ref for ref in broken if ref.entry is not None)

    @property
    def from_urls(self) -> tuple[WeightRef, ...]:
        """Missing refs the workflow gave as a URL the manifest does not list: fetched from that URL."""
        return tuple(ref for ref in self.missing if ref.entry is None and ref.url is not None)

    @property
    def unfetchable(self) -> tuple[WeightRef, ...]:
        """Missing refs no manifest entry and no URL describe: only the user can provide them."""
        return tuple(ref for ref in self.missing if ref.entry is None and ref.url is None)

    @property
    def renames(self) -> dict[tuple[str, str], str]:
        """`(folder, value as written) → name on disk`, for a weight found under the manifest's spelling
        (an alias) and for a weight the workflow gave as a URL: the workflow must name the file."""
        renames = {}
        for found in self.present:
            written = found.ref.url or found.ref.name
            on_disk = found.renamed_to or found.ref.name
            if written != on_disk:
                renames[(str(found.ref.folder), written)] = on_disk
        return renames


def locate_weight(ref: WeightRef, paths: ModelPaths) -> tuple[Path, os.stat_result, str | None] | None:
    """Where ComfyUI finds the file `ref` names, with its stat: the one answer to "is this weight here?".

    A name the manifest knows by another spelling (an alias, `.sft` for `.safetensors`) counts as here
    when the manifest's own file is, at its size; the third value is then the name the workflow must use
    instead (ComfyUI opens names as written). Reads no weight file; a stat per directory searched.
    """
    assert ref.folder is not None, "unplaced refs cannot be located"
    hit = paths.locate(ref.folder, ref.name)
    if hit is not None:
        return hit[0], hit[1], None
    entry = ref.entry
    if entry is not None and entry.name != ref.name:
        hit = paths.locate(ref.folder, entry.name)
        if hit is not None and entry.size in (None, hit[1].st_size):
            return hit[0], hit[1], entry.name
    return None


def check_weights(
    refs: Iterable[WeightRef], paths: ModelPaths, records: VerifiedRecords | None = None
) -> CheckReport:
    """Find each ref where ComfyUI would and compare its size with its manifest entry; reads no weight file.

    A ref without a manifest entry only needs to exist. With `records`, a file whose sha256 was recorded
    for its current size and mtime is `verified` when that hash is the manifest's, and `wrong_hash` when it
    is not (one small record read per file); a file whose entry leaves its hash to the host is `verified`
    when its record says the bytes matched what the host stated. Without records, `verified` is False.
    """
    present: list[FoundWeight] = []
    missing: list[WeightRef] = []
    wrong_size: list[FoundWeight] = []
    wrong_hash: list[FoundWeight] = []
    unplaced: list[WeightRef] = []
    for ref in refs:
        if ref.folder is None:
            unplaced.append(ref)
            continue
        hit = locate_weight(ref, paths)
        if hit is None:
            missing.append(ref)
            continue
        path, stat, renamed_to = hit
        entry = ref.entry
        found = FoundWeight(ref, path, stat.st_size, renamed_to=renamed_to)
        if entry is None:
            present.append(found)
        elif entry.size is not None and stat.st_size != entry.size:
            wrong_size.append(found)
        elif records is None:
            present.append(found)
        else:
            record = records.lookup_record(path, stat)
            if entry.sha256 is None:  # left to the host: verified when the bytes matched what it stated
                present.append(replace(found, verified=record is not None and record.vouched))
            else:
                found = replace(found, verified=record is not None and record.sha256 == entry.sha256)
                (wrong_hash if record is not None and not found.verified else present).append(found)
    return CheckReport(tuple(present), tuple(missing), tuple(wrong_size), tuple(wrong_hash), tuple(unplaced))


def verify_present(report: CheckReport, records: VerifiedRecords, *, rehash: bool = False) -> CheckReport:
    """`report` with the sha256 of every present, not yet verified manifest file confirmed.

    Each such file is hashed once (and the result recorded), then trusted while its size and mtime are
    unchanged; `rehash` ignores earlier records and hashes every file again. A file whose hash is not the
    expected one moves to `wrong_hash`; a file that was recorded as wrong and now hashes right moves back.
    The expected hash is the manifest's, or, for an entry that leaves it to the host, the one the host
    stated when the file was downloaded (its verified record keeps it): without `rehash` such a file
    stays as its record says, and without a vouched record there is nothing to compare against, so it
    stays present and unverified. Raises `OSError` if a file cannot be read.
    """
    present: list[FoundWeight] = []
    wrong_hash = [] if rehash else list(report.wrong_hash)
    for found in (*report.present, *report.wrong_hash) if rehash else report.present:
        entry = found.ref.entry
        if entry is None or (not rehash and (found.verified or entry.sha256 is None)):
            present.append(found)
            continue
        expected, source = _expected_sha256(entry, found, records)
        if expected is None:
            present.append(found)
            continue
        if rehash:
            records.forget(found.path)
        digest = _sha256(found, records)
        if digest == expected:
            if records.lookup(found.path) == digest:  # unchanged since hashed: record who vouched
                records.record(found.path, digest, source=source)
            present.append(replace(found, verified=True))
        else:
            logger.warning("%s: sha256 %s, but %s says %s", found.path, digest, _SAID_BY[source], expected)
            wrong_hash.append(found)
    return replace(report, present=tuple(present), wrong_hash=tuple(wrong_hash))


_SAID_BY = {"manifest": "the manifest", "huggingface": "Hugging Face", "civitai": "Civitai"}


def _expected_sha256(
    entry: WeightEntry, found: FoundWeight, records: VerifiedRecords
) -> tuple[str | None, str]:
    """The sha256 `found` must have and who stated it: the manifest's, else the host's from the record."""
    if entry.sha256 is not None:
        return entry.sha256, "manifest"
    record = records.lookup_record(found.path)
    if record is None or not record.vouched:
        return None, "manifest"
    return record.sha256, record.source


def _sha256(found: FoundWeight, records: VerifiedRecords) -> str:
    known = records.lookup(found.path)
    if known is not None:
        return known
    logger.info("verifying %s (%s)", found.path, format_bytes(found.size))
    started = time.monotonic()
    digest = records.sha256(found.path)
    elapsed = time.monotonic() - started
    logger.info(
        "verified %s in %.1f s (%s/s)",
        found.path,
        elapsed,
        format_bytes(int(found.size / max(elapsed, 1e-6))),
    )
    return digest


def missing_weights_error(
    report: CheckReport, paths: ModelPaths, manifest: Manifest | None = None
) -> MissingWeightsError:
    """The error for a report that is not `ok`: one paragraph naming each unusable file and what to do.

    For each file: which node and input asked for it, its folder and size, whether the manifest can fetch
    it (and if it is gated or non-commercial), near names on disk or in the manifest for a likely typo,
    where ComfyUI looked, and how to preload it. Lists folders only here, never on the happy path.
    """
    problems = [*report.missing, *(f.ref for f in report.wrong_size), *(f.ref for f in report.wrong_hash)]
    count = len(problems)
    parts = [
        f"This workflow needs {count} weight file{'s' if count != 1 else ''} that "
        f"{'are' if count != 1 else 'is'} not usable here."
    ]
    number = 0
    for ref in report.missing:
        number += 1
        parts.append(f"({number}) {_describe_missing(ref, paths, manifest)}")
    for found in report.wrong_size:
        number += 1
        entry = found.ref.entry
        assert entry is not None  # wrong size is only known against a manifest entry
        parts.append(
            f"({number}) '{found.ref.name}' ({found.ref.folder}), asked for by {found.ref.where}, is at "
            f"{found.path} but is {format_bytes(found.size)} ({found.size} bytes) where the manifest says "
            f"{format_bytes(entry.size)} ({entry.size} bytes): a partial download or a different file; "
            f"{_fetch_advice(entry, manifest)}."
        )
    for found in report.wrong_hash:
        number += 1
        entry = found.ref.entry
        assert entry is not None
        parts.append(
            f"({number}) '{found.ref.name}' ({found.ref.folder}), asked for by {found.ref.where}, is at "
            f"{found.path} with the right size, but its sha256 is not the manifest's: a corrupted or "
            f"different file; {_fetch_advice(entry, manifest)}."
        )
    return MissingWeightsError(
        " ".join(parts), missing=report.missing, wrong_size=report.wrong_size, wrong_hash=report.wrong_hash
    )


def _describe_missing(ref: WeightRef, paths: ModelPaths, manifest: Manifest | None) -> str:
    assert ref.folder is not None  # unplaced refs are never missing
    entry = ref.entry
    size = f", {format_bytes(entry.size)}" if entry is not None else ""
    sentences = [f"'{ref.name}' ({ref.folder}{size}), asked for by {ref.where}, is missing"]
    if entry is not None:
        sentences[0] += f"; the manifest has it as {entry.key}, so it can be fetched."
        if entry.gated:
            sentences.append("It is gated: set HF_TOKEN to a token of an account that accepted its license.")
        if entry.non_commercial:
            sentences.append(f"Its license ({entry.license or 'unknown'}) is non-commercial.")
        advice = _preload_advice(entry, manifest)
        sentences.append(advice[0].upper() + advice[1:] + ".")
    elif ref.url is not None:
        sentences[0] += f"; it is to be fetched from {display_url(ref.url)}."
    else:
        sentences[0] += " and is not in the manifest, so it cannot be fetched."
        near = _near_names(ref, paths, manifest)
        if near:
            sentences.append(f"Did you mean {near}?")
        elsewhere = manifest.candidates(ref.name) if manifest is not None else ()
        if elsewhere:
            folders = ", ".join(sorted({e.folder for e in elsewhere}))
            sentences.append(
                f"The manifest knows this name in {folders}, not {ref.folder}: is it the right node?"
            )
        name = ref.name
        if ref.folder == EMBEDDINGS and not name.lower().endswith(MODEL_EXTENSIONS):
            name += ".safetensors"
        sentences.append(
            f"Put the file at {Path(paths.dirs(ref.folder)[0]) / name}, give its URL in the workflow instead "
            "of its name, or add it to your manifest (WEIGHTS_MANIFEST_EXTRA) in one command: "
            f"python -m weightkit add <its URL> --folder {ref.folder} --name {name}."
        )
    sentences.append(f"Searched: {', '.join(paths.dirs(ref.folder))}.")
    return " ".join(sentences)


def _fetch_advice(entry: WeightEntry, manifest: Manifest | None) -> str:
    return f"delete it to have {entry.key} fetched again, or {_preload_advice(entry, manifest)}"


def _preload_advice(entry: WeightEntry, manifest: Manifest | None) -> str:
    kits = [
        kit for kit in (manifest.kits.values() if manifest is not None else ()) if entry.key in kit.weights
    ]
    if kits:
        smallest = min(kits, key=lambda kit: (len(kit.weights), kit.name))
        return (
            f"preload it with BASE_MODEL_KIT={smallest.name} or by naming this workflow in PRELOAD_WORKFLOW"
        )
    return "preload it by naming this workflow in PRELOAD_WORKFLOW"


def _near_names(ref: WeightRef, paths: ModelPaths, manifest: Manifest | None) -> str:
    """Up to three names close to `ref.name`, on disk or in the manifest, quoted and marked by origin.

    Names are compared without their extension and case, so a shared `.safetensors` does not make
    unrelated names look alike, and a name that differs only in extension or case is the closest.
    """
    assert ref.folder is not None
    origin: dict[str, str] = {}
    if manifest is not None:
        for entry in manifest.entries.values():
            if entry.folder == ref.folder:
                origin.update(dict.fromkeys((entry.name, *entry.aliases), "in the manifest"))
    origin.update(dict.fromkeys(paths.names(ref.folder), "on disk"))
    by_stem: dict[str, list[str]] = {}
    for name in origin:
        if name != ref.name:
            by_stem.setdefault(_stem(name), []).append(name)
    close = difflib.get_close_matches(_stem(ref.name), list(by_stem), n=3, cutoff=0.7)
    names = [name for stem in close for name in by_stem[stem]][:3]
    return " or ".join(f"'{name}' ({origin[name]})" for name in names)


def _stem(name: str) -> str:
    stem, extension = os.path.splitext(name.lower())
    return stem if extension else name.lower()
