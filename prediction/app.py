"""What the Cog predictor does, without Cog's types: `setup` and `predict`.

setup: preload the weights of `BASE_MODEL_KIT`, `PRELOAD_WORKFLOW` and `PRELOAD_WEIGHTS` (and unpack
Cog's `weights` tar) while ComfyUI starts, so setup takes about the longer of the two, then summarise.

predict, in order: empty the folders of the last prediction → workflow text → parse → every node class
known to ComfyUI → input file → URL inputs → seeds → required weights, local check, fetch what is missing
(or fail fast in strict mode; weights given as URLs are fetched either way) → run on ComfyUI → outputs in
the requested format.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from comfyrun.errors import StartStoppedError
from comfyui import ComfyUI
from prediction.custom_nodes import CustomNodes
from prediction.input_errors import InputError
from prediction.input_files import place_input_file
from prediction.netguard import URLGuard
from prediction.output_files import check_output_options, empty_folders, export_outputs, in_run_folder
from prediction.seeds import randomise_seeds, seed_ranges
from prediction.settings import PredictorSettings
from prediction.url_inputs import download_url_inputs
from prediction.workflow_source import workflow_text
from weightkit.download import FetchSummary
from weightkit.errors import PreloadError, WeightkitError
from weightkit.store import EnsureResult, WeightStore, apply_renames
from weightkit.units import format_bytes
from weightkit.workflow import parse_workflow

__all__ = ["App", "PredictRequest", "PredictResult", "SetupReport"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class SetupReport:
    """How long each half of setup took, and what preloading did (None: nothing to preload)."""

    preload: FetchSummary | None
    preload_seconds: float
    comfyui_seconds: float
    total_seconds: float


@dataclass(frozen=True, kw_only=True)
class PredictRequest:
    """A prediction's inputs, as `predict.py` documents them."""

    workflow_json: str = ""
    input_file: Path | None = None
    return_temp_files: bool = False
    output_format: str = "webp"
    output_quality: int = 95
    randomise_seeds: bool = True
    force_reset_cache: bool = False


@dataclass(frozen=True)
class PredictResult:
    files: list[Path]
    metrics: dict[str, float] = field(default_factory=dict)


class App:
    """One deployment: its weights, its ComfyUI, and the predictions run on them."""

    def __init__(self, settings: PredictorSettings) -> None:
        """Reads the custom node lock and the weights manifest (raising `LockError`, `ManifestError`);
        starts nothing."""
        self.settings = settings
        c = settings.comfyui
        self.nodes = CustomNodes(settings.nodes, c)
        self.store = WeightStore(c.weights, manifest=self.nodes.manifest(), output_dir=c.output_dir)
        self.comfy = ComfyUI(
            c,
            store=self.store,
            env=self.nodes.comfyui_env(),
            model_paths_files=self.nodes.model_paths_files(),
        )
        self._seed_ranges: dict[tuple[str, str], tuple[int, int]] | None = None

    # -- setup ---------------------------------------------------------------------------------------------

    def setup(self, weights: str | None = None) -> SetupReport:
        """Start ComfyUI and preload weights at the same time. Raises `ComfyUIStartError` when ComfyUI does
        not come up, and `PreloadError` when a configured weight cannot be made present (unless
        `PRELOAD_BEST_EFFORT`); ComfyUI is stopped again then."""
        started = time.monotonic()
        self.nodes.write_model_paths()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="comfyui-start") as pool:
            comfy_start = pool.submit(_timed, self.comfy.start)
            comfy_start.add_done_callback(_log_start_failure)
            try:
                preload_seconds, summary = _timed(lambda: self._preload(weights))
            except BaseException:
                self.comfy.stop()  # ends a start under way at once, rather than waiting for it
                _stop_when_started(comfy_start, self.comfy)
                raise
            comfy_seconds, _ = comfy_start.result()
        self.nodes.log_status(self.comfy.import_failures())
        report = SetupReport(summary, preload_seconds, comfy_seconds, time.monotonic() - started)
        logger.info(
            "setup done in %.1f s: ComfyUI started in %.1f s, weights preloaded in %.1f s, side by side",
            report.total_seconds,
            comfy_seconds,
            preload_seconds,
        )
        return report

    def _preload(self, weights: str | None) -> FetchSummary | None:
        """Cog's weights tar, then what `BASE_MODEL_KIT`, `PRELOAD_WORKFLOW` and `PRELOAD_WEIGHTS` name.

        Raises `PreloadError` at the first failure; with `PRELOAD_BEST_EFFORT` every part is attempted
        and each failure logged instead (one missing kit weight must not cost the workflows' weights)."""
        s = self.settings
        if s.kits or s.preload_workflows or s.preload_weights:
            logger.info(
                "preloading kits %s, workflows %s, weights %s",
                ", ".join(s.kits) or "-",
                ", ".join(str(path) for path in s.preload_workflows) or "-",
                ", ".join(s.preload_weights) or "-",
            )
        else:
            logger.info("no BASE_MODEL_KIT, PRELOAD_WORKFLOW or PRELOAD_WEIGHTS: weights come on demand")
        summaries: list[FetchSummary] = []
        for what, part in self._preload_parts(weights):
            try:
                summary = part()
            except (WeightkitError, InputError, OSError) as exc:
                if not s.preload_best_effort:
                    raise PreloadError(exc) from exc
                logger.warning("preloading %s failed, going on (PRELOAD_BEST_EFFORT): %s", what, exc)
                continue
            if summary is not None:
                summaries.append(summary)
        if not summaries:
            return None
        self.nodes.link_weights()
        total = FetchSummary(
            results=tuple(result for each in summaries for result in each.results),
            seconds=sum(each.seconds for each in summaries),
            failed=tuple(name for each in summaries for name in each.failed),
        )
        logger.info(
            "preloaded %d weight file(s): %d already present, %s downloaded in %.1f s (%.0f MB/s)",
            total.files,
            total.present,
            format_bytes(total.bytes),
            total.seconds,
            total.mb_per_s,
        )
        return total

    def _preload_parts(self, weights: str | None) -> list[tuple[str, Callable[[], FetchSummary | None]]]:
        """The parts of a preload, in order: Cog's tar, then one plan of every configured weight (fetched
        side by side), or with `PRELOAD_BEST_EFFORT` one part per setting, so that each fails alone."""
        s = self.settings
        parts: list[tuple[str, Callable[[], FetchSummary | None]]] = []
        if weights:
            parts.append(("Cog's weights", partial(self._install, weights)))
        if s.preload_best_effort:
            if s.kits:
                parts.append(("BASE_MODEL_KIT", partial(self._fetch, kits=s.kits)))
            if s.preload_workflows:
                parts.append(("PRELOAD_WORKFLOW", partial(self._fetch, workflows=s.preload_workflows)))
            if s.preload_weights:
                parts.append(("PRELOAD_WEIGHTS", partial(self._fetch, names=s.preload_weights)))
        elif s.kits or s.preload_workflows or s.preload_weights:
            every = partial(self._fetch, kits=s.kits, workflows=s.preload_workflows, names=s.preload_weights)
            parts.append(("the weights", every))
        return parts

    def _install(self, weights: str) -> None:
        self.install_user_weights(weights)

    def _fetch(
        self, *, kits: Iterable[str] = (), workflows: Iterable[Path] = (), names: Iterable[str] = ()
    ) -> FetchSummary:
        """Preload through the store; `workflows` are `PRELOAD_WORKFLOW` entries (files or folders)."""
        texts = [path.read_bytes() for path in _workflow_files(workflows)]
        return self.store.preload(kits=kits, workflows=texts, names=names)

    def preload_base_kit(self, kit_name: str) -> FetchSummary:
        """Fetch every weight of a kit (or of several, comma-separated). Raises `UnknownKitError`."""
        return self.store.preload(kits=[k.strip() for k in kit_name.split(",") if k.strip()])

    def preload_workflow_weights(self, workflow_json: str | bytes) -> FetchSummary:
        """Fetch every weight an API-format workflow needs. Raises `WorkflowError`, `MissingWeightsError`
        for a weight the manifest cannot provide."""
        return self.store.preload(workflows=[workflow_json])

    def install_user_weights(self, source: str) -> list[Path]:
        """Unpack Cog's `weights` (a .tar of model folders) into the weights directory; its URL is vetted
        like every URL a prediction brings (see `WeightStore.install_archive`)."""
        return self.store.install_archive(source, url_guard=URLGuard(self.settings.inputs))

    # -- predict ---------------------------------------------------------------------------------------

    def predict(self, request: PredictRequest) -> PredictResult:
        """Run one workflow; the files it made, converted as asked, and the figures to report.

        Raises the input, weights and ComfyUI errors of the packages below, each one paragraph."""
        s, started = self.settings, time.monotonic()
        check_output_options(request.output_format, request.output_quality)
        self._reset_folders()
        if request.force_reset_cache:
            self.comfy.reset_cache()

        text = workflow_text(request.workflow_json, default_path=s.default_workflow, settings=s.inputs)
        workflow: dict[str, Any] = parse_workflow(text)
        # A misspelt class, or one from a pack that is not installed, must not cost a download.
        self.comfy.check_node_classes(workflow, hint_for=self.nodes.hint)
        if request.input_file is not None:
            placed = place_input_file(Path(request.input_file), s.comfyui.input_dir, settings=s.inputs)
            logger.info("input file placed in the input folder as %s", ", ".join(placed))

        workflow, downloaded = download_url_inputs(
            workflow, s.comfyui.input_dir, settings=s.inputs, loaders=self.store.manifest.loader_map
        )
        workflow, _ = self.comfy.upload_inputs(s.comfyui.input_dir, workflow)  # only when attached
        if request.randomise_seeds:
            workflow, _ = randomise_seeds(workflow, ranges=self._ranges())

        ensured = self.store.ensure(
            workflow,
            fetch_missing=not s.strict_weights,
            url_guard=URLGuard(s.inputs),  # for weights the workflow gives as URLs
            url_tokens=s.inputs.tokens_for_urls,
        )
        if ensured.fetched is not None:
            self.nodes.link_weights()
        workflow = in_run_folder(
            apply_renames(workflow, ensured.renames, loaders=self.store.manifest.loader_map),
            uuid.uuid4().hex[:12],
        )
        fetched = ensured.fetched
        _log_weights(ensured.refs, ensured.already_present, fetched)

        run_started = time.monotonic()
        outputs = self.comfy.run(workflow, include_temp=request.return_temp_files, check_weights=False)
        comfy_seconds = time.monotonic() - run_started

        texts = [o for o in outputs if o.text is not None]
        files = [o.path for o in outputs if o.path is not None] + self._write_texts(texts)
        exported = export_outputs(
            files, s.returned_dir, output_format=request.output_format, output_quality=request.output_quality
        )
        total = time.monotonic() - started
        metrics = _metrics(ensured, inputs=len(downloaded), comfy_seconds=comfy_seconds, total=total)
        logger.info(
            "prediction done in %.2f s: weights checked in %.2f ms, ComfyUI ran %.2f s, %d output file(s)",
            total,
            ensured.check_seconds * 1000,
            comfy_seconds,
            len(exported),
        )
        return PredictResult(exported, metrics)

    def _reset_folders(self) -> None:
        """Nothing of the last prediction may leak into this one: inputs, outputs, previews, returns."""
        c = self.settings.comfyui
        empty_folders(c.input_dir, c.output_dir, c.temp_dir / "temp", self.settings.returned_dir)

    def _ranges(self) -> dict[tuple[str, str], tuple[int, int]]:
        if self._seed_ranges is None:
            self._seed_ranges = seed_ranges(self.comfy.object_info())
        return self._seed_ranges

    def healthcheck(self) -> None:
        """Raise when this deployment cannot predict: ComfyUI died and cannot be brought back."""
        self.comfy.check_health()

    def _write_texts(self, texts: Iterable[Any]) -> list[Path]:
        """Each text output as `text_<n>.txt`: numbered, never named after anything in the workflow (a
        node id such as `../../x` would otherwise lead the file out of the folder)."""
        paths = []
        folder = self.settings.comfyui.output_dir / "text"
        for number, output in enumerate(texts, start=1):
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"text_{number}.txt"
            path.write_text(output.text, encoding="utf-8")
            paths.append(path)
        return paths


def _metrics(ensured: EnsureResult, *, inputs: int, comfy_seconds: float, total: float) -> dict[str, float]:
    """What a prediction reports to Cog: its weights, inputs and times."""
    fetched = ensured.fetched
    return {
        "weights_required": float(len(ensured.refs)),
        "weights_already_present": float(ensured.already_present),
        "weights_fetched": float(fetched.files - fetched.present if fetched else 0),
        "weights_fetched_bytes": float(fetched.bytes if fetched else 0),
        "weights_fetch_seconds": round(fetched.seconds if fetched else 0.0, 3),
        "weights_check_ms": round(ensured.check_seconds * 1000, 3),
        "inputs_downloaded": float(inputs),
        "comfyui_seconds": round(comfy_seconds, 3),
        "total_seconds": round(total, 3),
    }


def _timed(function: Callable[[], T]) -> tuple[float, T]:
    started = time.monotonic()
    result = function()
    return time.monotonic() - started, result


def _log_start_failure(future: Future[Any]) -> None:
    exc = None if future.cancelled() else future.exception()
    if exc is not None and not isinstance(exc, StartStoppedError):  # stopped: the preload failed
        logger.error("ComfyUI did not start (setup goes on preloading, then fails): %s", exc)


def _stop_when_started(future: Future[Any], comfy: ComfyUI) -> None:
    """Wait for the start to end (quick once stopped) and stop a ComfyUI it started all the same: a
    `stop()` that came before the start had a process to end does not prevent it."""
    try:
        future.result()
    except Exception:  # its own failure is logged; the preload error is the one raised
        return
    comfy.stop()


def _workflow_files(entries: Iterable[Path]) -> list[Path]:
    """Each `PRELOAD_WORKFLOW` entry: a JSON file, or a folder whose `*.json` files are all read."""
    files: list[Path] = []
    for entry in entries:
        if entry.is_dir():
            files += sorted(entry.glob("*.json"))
        elif entry.is_file():
            files.append(entry)
        else:
            raise FileNotFoundError(f"PRELOAD_WORKFLOW names {entry}, which is neither a file nor a folder")
    return files


def _log_weights(refs: Iterable[Any], already: int, fetched: FetchSummary | None) -> None:
    refs = list(refs)
    if fetched is None or fetched.files == fetched.present:
        logger.info("weights: %d needed, all present", len(refs))
        return
    logger.info(
        "weights: %d needed, %d already present, %d fetched (%s in %.1f s)",
        len(refs),
        already,
        fetched.files - fetched.present,
        format_bytes(fetched.bytes),
        fetched.seconds,
    )
