"""`WeightStore`: the one object the predictor, the ComfyUI wrapper and the command line use for weights.

It ties the manifest, ComfyUI's search paths, the verified records and the downloader together along
the one-way flow workflow → required weights → local check → fetch:

- `required(workflow)`: which files, in which folders, asked for by which nodes;
- `check(workflow)`: a stat per file, sizes against the manifest (`validate` raises when not all are here);
- `ensure(workflow)`: check, fetch what is missing (or fail fast in strict mode), check again;
- `preload(kits=..., workflows=..., names=...)`: fetch ahead of any prediction;
- `repair(name, folder)`: quarantine a file ComfyUI could not load and fetch it again, verified;
- `install_archive(source)`: unpack Cog's `weights` tar of model folders into the weights directory.

Whether a weight is here is answered in one place, `check.locate_weight`, for predictions, preloads, the
command line and repairs alike. A workflow may name a weight by an alias or its other
`.sft`/`.safetensors` spelling; ComfyUI opens the name as written, so the check reports `renames` from
the written name to the file on disk and `apply_renames` rewrites the workflow to match.
"""

from __future__ import annotations

import difflib
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from weightkit.archive_install import install_archive
from weightkit.check import CheckReport, check_weights, missing_weights_error
from weightkit.download import (
    Downloader,
    FetchRequest,
    FetchResult,
    FetchSummary,
    ProgressReporter,
)
from weightkit.errors import RepairError, UnknownWeightError
from weightkit.extract import WeightRef, required_weights
from weightkit.folders import canonical_folder
from weightkit.layout import StateDir
from weightkit.loaders import LoaderMap, builtin_loader_map
from weightkit.manifest import Manifest, WeightEntry, name_is_safe
from weightkit.manifest_file import load_manifest
from weightkit.modelpaths import ModelPaths, weight_folders, write_extra_model_paths
from weightkit.settings import WeightSettings
from weightkit.units import format_total
from weightkit.url_weights import fetch_url_weights
from weightkit.urlforms import is_weight_url, stable_weight_name
from weightkit.verified import VerifiedRecords
from weightkit.workflow import parse_workflow

__all__ = ["EnsureResult", "WeightStore", "apply_renames"]

logger = logging.getLogger(__name__)

Workflow = Mapping[str, Any]
Renames = Mapping[tuple[str, str], str]


@dataclass(frozen=True)
class EnsureResult:
    """What `ensure` found and did: the final check, the files fetched (if any), and the renames to
    apply to the workflow (written name → name on disk)."""

    refs: tuple[WeightRef, ...]
    report: CheckReport
    fetched: FetchSummary | None = None
    renames: Renames = field(default_factory=dict)
    check_seconds: float = 0.0

    @property
    def already_present(self) -> int:
        return len(self.report.present) - (self.fetched.files - self.fetched.present if self.fetched else 0)


class WeightStore:
    """Weights for one deployment: `settings` say where; the constructor touches nothing.

    `output_dir` is ComfyUI's `--output-directory` (it searches `<output>/checkpoints` and friends too);
    `progress` receives download progress (log lines by default, a bar on a terminal from the CLI).
    """

    def __init__(
        self,
        settings: WeightSettings,
        *,
        manifest: Manifest | None = None,
        output_dir: Path | None = None,
        progress: ProgressReporter | None = None,
    ) -> None:
        self.settings = settings
        self._manifest = manifest
        self._output_dir = output_dir
        self._progress = progress

    # -- the parts, built on first use -----------------------------------------------------------------

    @cached_property
    def manifest(self) -> Manifest:
        if self._manifest is None:
            self._manifest = load_manifest(self.settings.manifest_path, self.settings.manifest_extra)
        return self._manifest

    @cached_property
    def paths(self) -> ModelPaths:
        return ModelPaths.from_settings(self.settings, output_dir=self._output_dir)

    @cached_property
    def weights_dir(self) -> Path:
        """`WEIGHTS_DIR` made absolute once, as `ModelPaths` reports the files it finds there: a relative
        setting must not make a file in it look like one found elsewhere."""
        return Path(os.path.abspath(self.settings.weights_dir))

    @cached_property
    def state(self) -> StateDir:
        return StateDir(self.weights_dir)

    @cached_property
    def records(self) -> VerifiedRecords:
        return VerifiedRecords(self.state.records)

    @cached_property
    def downloader(self) -> Downloader:
        return Downloader(self.settings.download, records=self.records, progress=self._progress)

    def destination(self, entry: WeightEntry) -> Path:
        """Where a fetched `entry` lands: `<WEIGHTS_DIR>/<folder>/<name>`, searched first by ComfyUI."""
        return self.weights_dir / entry.folder / entry.name

    def write_extra_model_paths(self, path: Path) -> Path:
        """The `extra_model_paths.yaml` that makes ComfyUI search the weights directory first."""
        return write_extra_model_paths(path, self.weights_dir, weight_folders(self.manifest))

    # -- workflow → weights → check ----------------------------------------------------------------------

    def required(self, workflow: Workflow | str | bytes) -> list[WeightRef]:
        """Every weight file `workflow` needs (see `weightkit.extract.required_weights`)."""
        return required_weights(workflow, self.manifest)

    def check(self, workflow: Workflow | str | bytes) -> CheckReport:
        """Where each weight is, by a stat per file; an aliased name counts as present when the
        manifest's file is here (see `renames`)."""
        return self.check_refs(self.required(workflow))

    def check_refs(self, refs: Sequence[WeightRef], *, verified: bool = False) -> CheckReport:
        """`check` for refs already extracted; `verified` also reads each file's verified record (a
        small read per file) to tell verified files and recorded wrong hashes apart."""
        return check_weights(refs, self.paths, self.records if verified else None)

    def validate(self, workflow: Workflow | str | bytes) -> CheckReport:
        """`check`, raising `MissingWeightsError` (one paragraph a user can act on) if anything is missing,
        the wrong size, or in no known folder."""
        report = self.check(workflow)
        if not report.ok:
            raise missing_weights_error(report, self.paths, self.manifest)
        return report

    def ensure(
        self,
        workflow: Workflow | str | bytes,
        *,
        fetch_missing: bool = True,
        url_guard: Callable[[str], object] | None = None,
        url_tokens: bool = False,
    ) -> EnsureResult:
        """Make every weight of `workflow` present: check, fetch what the manifest or the workflow's URLs
        provide, check again.

        With `fetch_missing=False` (strict mode) no manifest weight is fetched; a weight the workflow
        gives as a URL is fetched all the same (the caller asked for that file), vetted by `url_guard`,
        with the operator's tokens only when `url_tokens` says so.
        Raises `MissingWeightsError` when a weight is still not here (naming what can and cannot be
        fetched and how to preload it), `WeightURLError` for a URL that served something else, or the
        downloader's errors when a fetch fails.
        """
        started = time.perf_counter()
        refs = tuple(self.required(workflow))
        report = self.check_refs(refs)
        check_seconds = time.perf_counter() - started
        if report.ok:
            return EnsureResult(refs, report, renames=report.renames, check_seconds=check_seconds)
        if report.unfetchable or (report.to_fetch and not fetch_missing):
            raise missing_weights_error(report, self.paths, self.manifest)
        fetch_started = time.monotonic()
        entries = _unique(ref.entry for ref in report.to_fetch if ref.entry is not None)
        if entries:
            logger.info(
                "fetching %d missing weight(s), %s: %s",
                len(entries),
                format_total(e.size for e in entries),
                ", ".join(e.key for e in entries),
            )
        results = [*self.fetch_entries(entries).results] if entries else []
        results += fetch_url_weights(self, report.from_urls, url_guard=url_guard, tokens=url_tokens).results
        fetched = FetchSummary(results=tuple(results), seconds=time.monotonic() - fetch_started)
        report = self.check_refs(refs)
        if not report.ok:
            raise missing_weights_error(report, self.paths, self.manifest)
        return EnsureResult(refs, report, fetched, report.renames, check_seconds)

    # -- fetching ------------------------------------------------------------------------------------------

    def fetch_entries(self, entries: Iterable[WeightEntry]) -> FetchSummary:
        """Fetch manifest weights into the weights directory, several at once; present ones are skipped
        after a stat (and a hash the first time, recorded)."""
        requests = [FetchRequest.for_entry(entry, self.destination(entry)) for entry in _unique(entries)]
        return self.downloader.fetch_many(requests)

    def entries_for(
        self,
        *,
        kits: Iterable[str] = (),
        workflows: Iterable[Workflow | str | bytes] = (),
        names: Iterable[str] = (),
    ) -> list[WeightEntry]:
        """The manifest weights of `kits`, of the weights `workflows` need, and of `names` (a name, an
        alias, or `folder/name`), in that order, without repeats.

        Raises `UnknownKitError`, `UnknownWeightError`, `WorkflowError`, or `MissingWeightsError` for a
        workflow weight the manifest does not describe (it could never be preloaded).
        """
        entries: list[WeightEntry] = []
        for kit in kits:
            entries += self.manifest.kit_entries(kit)
        for workflow in workflows:
            report = self.check_refs(self.required(workflow))
            if report.unfetchable:
                raise missing_weights_error(
                    CheckReport(missing=report.unfetchable), self.paths, self.manifest
                )
            entries += [ref.entry for ref in report.to_fetch if ref.entry is not None]
            entries += [found.ref.entry for found in report.present if found.ref.entry is not None]
        for name in names:
            entries.append(self._entry_named(name))
        return _unique(entries)

    def preload(
        self,
        *,
        kits: Iterable[str] = (),
        workflows: Iterable[Workflow | str | bytes] = (),
        names: Iterable[str] = (),
    ) -> FetchSummary:
        """Fetch everything `kits`, `workflows` and `names` need before any prediction. A file ComfyUI
        already finds elsewhere at the manifest size (its `models/` folder, an extra path) is counted as
        present rather than fetched again, unless its verified record says its sha256 is not the
        manifest's; a file at its destination is left to the downloader, which verifies it once."""
        started = time.monotonic()
        names = list(names)
        url_refs = [self._url_ref(spec) for spec in names if _is_url_spec(spec)]
        named = [spec for spec in names if not _is_url_spec(spec)]
        entries = self.entries_for(kits=kits, workflows=workflows, names=named)
        entries += [ref.entry for ref in url_refs if ref.entry is not None]
        refs = {WeightRef.of_entry(entry): entry for entry in _unique(entries)}
        report = self.check_refs(list(refs), verified=True)
        elsewhere = {f.ref: f for f in report.present if f.path != self.destination(refs[f.ref])}
        to_fetch = [entry for ref, entry in refs.items() if ref not in elsewhere]
        fetched = self.fetch_entries(to_fetch) if to_fetch else FetchSummary(results=(), seconds=0.0)
        from_urls = self.check_refs([ref for ref in url_refs if ref.entry is None]).from_urls
        by_url = fetch_url_weights(self, from_urls, url_guard=None, tokens=True)  # the operator's own URLs
        present = tuple(
            FetchResult(name=f.ref.label, path=f.path, size=f.size, sha256=None, seconds=0.0, present=True)
            for f in elsewhere.values()
        )
        results = (*present, *fetched.results, *by_url.results)
        return FetchSummary(results=results, seconds=time.monotonic() - started)

    def _url_ref(self, spec: str) -> WeightRef:
        """A `PRELOAD_WEIGHTS` item given as a URL: `URL` when the manifest lists it, else `folder=URL`."""
        folder, _, url = spec.partition("=") if not is_weight_url(spec) else ("", "", spec)
        entry = self.manifest.find_url(url)
        if entry is not None and folder in ("", entry.folder):
            return WeightRef.of_entry(entry)
        if not folder:
            raise UnknownWeightError(
                spec,
                hint="The manifest does not list this URL, so say which model folder the file goes in: "
                f"write it as folder=URL, such as loras={url}.",
            )
        folder = folder.strip()
        if not name_is_safe(folder) or any(part.startswith(".") for part in folder.split("/")):
            raise UnknownWeightError(
                spec,
                hint=f"The folder '{folder}' before '=' must be a model folder inside the weights directory, "
                "such as loras or checkpoints/sdxl: a relative path without '..', a leading '/', a "
                "backslash or a hidden folder (.weightkit holds weightkit's own records).",
            )
        folder = canonical_folder(folder)
        return WeightRef(stable_weight_name(url), folder, "-", "PRELOAD_WEIGHTS", "url", url=url.strip())

    def _entry_named(self, name: str) -> WeightEntry:
        folder, _, bare = name.partition("/")
        entry = self.manifest.find(bare, folder) if bare else None
        entry = entry or self.manifest.find(name)
        if entry is None:
            known = [text for e in self.manifest.entries.values() for text in (e.key, e.name)]
            raise UnknownWeightError(name, difflib.get_close_matches(name, known, n=3, cutoff=0.6))
        return entry

    def install_archive(self, source: str, *, url_guard: Callable[[str], object] | None = None) -> list[Path]:
        """Unpack Cog's `weights` tar of model folders into the weights directory (see
        `weightkit.archive_install`); `url_guard` vets a URL source and every redirect hop."""
        return install_archive(self, source, url_guard=url_guard)

    # -- repair --------------------------------------------------------------------------------------------

    def repair(self, name: str, folder: str) -> Path:
        """Quarantine the file ComfyUI loads for `folder/name` and fetch the manifest's file again,
        verified. Returns where the good file now is. Raises `RepairError` when the manifest does not
        describe the file (nothing is moved then) or the downloader's error when fetching fails."""
        entry = self.manifest.find(name, folder)
        if entry is None:
            raise RepairError(
                folder,
                name,
                "it is not in the weights manifest, so there is no known-good copy to fetch; replace the "
                "file by hand or describe it in a manifest named by WEIGHTS_MANIFEST_EXTRA",
            )
        for spelling in dict.fromkeys((name, entry.name)):
            hit = self.paths.locate(entry.folder, spelling)
            if hit is not None:
                self.quarantine(hit[0], folder=entry.folder)
        return self.downloader.fetch(FetchRequest.for_entry(entry, self.destination(entry))).path

    def quarantine(self, path: Path, *, folder: str) -> Path:
        """Move a broken weight out of every folder ComfyUI searches, keeping it for inspection."""
        target_dir = self.state.quarantine(folder)
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / f"{path.name}.{time.strftime('%Y%m%dT%H%M%S')}.{os.getpid()}"
        self.records.forget(path)
        shutil.move(path, target)
        logger.warning("quarantined %s as %s", path, target)
        return target


def apply_renames(
    workflow: Workflow, renames: Renames, *, loaders: LoaderMap | None = None
) -> dict[str, Any]:
    """`workflow` with every input naming a renamed weight rewritten to the name on disk (a new dict).

    Renames are per folder (one URL may be a LoRA's and a checkpoint's, saved under two names), so an
    input is renamed by the folder `loaders` (default: the built-in loader map) give it; an input they do
    not place is renamed only when its value has one rename in every folder.
    """
    if not renames:
        return dict(workflow)
    loaders = loaders or builtin_loader_map()
    by_name: dict[str, set[str]] = {}
    for (_, old), new in renames.items():
        by_name.setdefault(old, set()).add(new)
    out: dict[str, Any] = {}
    for node_id, node in parse_workflow(workflow).items():
        inputs = dict(node["inputs"])
        for key, value in node["inputs"].items():
            if isinstance(value, str) and value in by_name:
                folder = loaders.folder(node["class_type"], key)
                if folder is not None:
                    inputs[key] = renames.get((folder, value), value)
                elif len(by_name[value]) == 1:
                    inputs[key] = next(iter(by_name[value]))
        out[node_id] = {**node, "inputs": inputs}
    return out


def _is_url_spec(spec: str) -> bool:
    """`URL` or `folder=URL`: a weight to fetch from where the operator says."""
    return is_weight_url(spec) or is_weight_url(spec.partition("=")[2])


def _unique(entries: Iterable[WeightEntry]) -> list[WeightEntry]:
    return list({entry.key: entry for entry in entries}.values())
