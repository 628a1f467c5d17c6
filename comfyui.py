"""`ComfyUI`: where a prediction meets ComfyUI.

It starts ComfyUI from a checkout (or attaches to `COMFYUI_URL`), submits a workflow, follows it to the end
over the websocket, and collects its outputs. A weight file that turns out corrupt while ComfyUI loads it
is quarantined, fetched again, verified, and the workflow re-run once. The pieces live in `comfyrun/`;
weights are the business of a `weightkit` store handed in by the caller.

    comfy = ComfyUI(RuntimeSettings.from_env(), store=store)
    comfy.start()
    outputs = comfy.run(workflow)
    comfy.stop()
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from comfyrun.errors import (
    ComfyRunError,
    ComfyUIDiedError,
    ExecutionError,
    OutputFileMissingError,
    PromptInterruptedError,
    WeightCorruptError,
    WeightMissingError,
    describe_node_errors,
    parse_node_errors,
)
from comfyrun.follow import Connection, PromptFollower, follow
from comfyrun.http import ComfyHTTP
from comfyrun.outputs import Output, collect_outputs
from comfyrun.process import ComfyProcess, free_port
from comfyrun.settings import RuntimeSettings
from comfyrun.weightfaults import WeightRefLike, looks_corrupt, missing_weight, suspect_files
from weightkit.errors import WeightkitError
from weightkit.modelpaths import weight_folders, write_extra_model_paths

__all__ = ["ComfyUI", "WeightStore"]

logger = logging.getLogger(__name__)

Workflow = Mapping[str, Any]


class WeightStore(Protocol):
    """What `ComfyUI` needs from `weightkit.store.WeightStore`."""

    def required(self, workflow: Workflow) -> Sequence[WeightRefLike]: ...

    def validate(self, workflow: Workflow) -> object: ...

    def repair(self, name: str, folder: str) -> Path: ...

    def write_extra_model_paths(self, path: Path) -> Path: ...


class ComfyUI:
    """One ComfyUI server, started here or attached to, and the workflows run on it.

    The constructor only stores its arguments; `start()` launches or attaches.
    """

    def __init__(self, settings: RuntimeSettings, *, store: WeightStore | None = None) -> None:
        self.settings = settings
        self.store = store
        self.client_id = uuid.uuid4().hex
        self._process: ComfyProcess | None = None
        self._http: ComfyHTTP | None = None
        self._connection: Connection | None = None

    @classmethod
    def from_env(cls, *, store: WeightStore | None = None) -> ComfyUI:
        return cls(RuntimeSettings.from_env(), store=store)

    # -- server -------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._api().base_url

    @property
    def pid(self) -> int | None:
        """The ComfyUI process started here; None when attached or stopped."""
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Start ComfyUI (or check that `COMFYUI_URL` answers) and wait until it serves requests.

        Raises `ComfyUIStartError` with ComfyUI's last log lines, or `ComfyUIUnavailableError`.
        """
        if self.settings.url:
            http = ComfyHTTP(self.settings.url)
            http.system_stats()
            logger.info("attached to ComfyUI at %s", self.settings.url)
        else:
            self._process, http = self._launch()
        self._http = http
        self._connection = Connection(http.ws_url(self.client_id))

    def _launch(self) -> tuple[ComfyProcess, ComfyHTTP]:
        s = self.settings
        for directory in (s.input_dir, s.output_dir, s.temp_dir):
            directory.mkdir(parents=True, exist_ok=True)
        if self.store is not None:
            self.store.write_extra_model_paths(s.model_paths_file)
        else:
            write_extra_model_paths(s.model_paths_file, s.weights.weights_dir, weight_folders())
        # Ours last: ComfyUI puts each `is_default` path first in turn, so the weights dir wins.
        paths_files = [*filter(None, [s.weights.extra_model_paths]), s.model_paths_file]
        process = ComfyProcess(s, port=s.port or free_port(), model_paths_files=paths_files)
        http = ComfyHTTP(process.url)
        process.start()
        try:
            process.wait_ready(http, s.start_timeout)
        except BaseException:
            process.stop()
            raise
        return process, http

    def stop(self) -> None:
        """Close the websocket and stop the ComfyUI started here (an attached one keeps running)."""
        if self._connection is not None:
            self._connection.close()
        if self._process is not None:
            self._process.stop()
        self._process = self._http = self._connection = None

    def __enter__(self) -> ComfyUI:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- weights --------------------------------------------------------------------------------------

    def extract_required_weights(self, workflow: Workflow) -> list[WeightRefLike]:
        """The weight files `workflow` loads, with their folders and the nodes that load them."""
        return list(self._weights().required(workflow))

    def validate_weights_exist(self, workflow: Workflow, skip_check: bool = False) -> object:
        """The store's check that every weight is on disk (a stat per file); raises `MissingWeightsError`,
        one paragraph naming each missing file, the node that wants it and how to get it."""
        return None if skip_check else self._weights().validate(workflow)

    # -- running --------------------------------------------------------------------------------------

    def run(
        self, workflow: Workflow, *, include_temp: bool = False, check_weights: bool = True
    ) -> list[Output]:
        """Run `workflow` to the end and return its outputs; repair a corrupt weight and re-run once.

        ComfyUI caches node results, output nodes included: run again unchanged, it re-reports the files
        it saved last time. When such a file has been deleted since, ComfyUI's cache is cleared and the
        workflow run once more, so that it saves them again.

        Raises `PromptRejectedError`, `ExecutionError` (`WeightMissingError`, `WeightCorruptError`),
        `PromptInterruptedError`, `RunTimeoutError`, `ComfyUIDiedError`; a cancellation of the calling
        thread interrupts the prompt on ComfyUI before it propagates.
        """
        if check_weights and self.store is not None:
            self.validate_weights_exist(workflow)
        try:
            entry = self.wait(self.submit(workflow), workflow=workflow)
        except WeightCorruptError as corrupt:
            if self.store is None or not corrupt.files:
                raise
            entry = self._repair_and_rerun(workflow, corrupt)
        try:
            return self.outputs(entry, include_temp=include_temp)
        except OutputFileMissingError as gone:
            logger.warning("%s (a cached result); clearing ComfyUI's cache and running again", gone)
            self.free_memory(unload_models=False, free_memory=True)
            return self.outputs(
                self.wait(self.submit(workflow), workflow=workflow), include_temp=include_temp
            )

    def submit(self, workflow: Workflow) -> str:
        """Queue `workflow`; its prompt id. Raises `PromptRejectedError` with ComfyUI's node errors."""
        http, connection = self._api(), self._ws()
        if not connection.is_open:
            connection.open()  # before queueing, so that no message of the prompt is missed
        prompt_id = str(uuid.uuid4())
        try:
            answer = http.post_prompt(workflow, client_id=self.client_id, prompt_id=prompt_id)
        except ComfyRunError:
            raise
        except BaseException:
            self._abandon(prompt_id)  # cancelled while queueing: it may be queued all the same
            raise
        if answer.get("node_errors"):
            logger.warning(
                "ComfyUI runs only the valid outputs of this workflow, it skipped some: %s",
                describe_node_errors(parse_node_errors(answer["node_errors"])),
            )
        prompt_id = str(answer.get("prompt_id") or prompt_id)
        logger.info("queued prompt %s", prompt_id)
        return prompt_id

    def wait(self, prompt_id: str, *, workflow: Workflow | None = None) -> dict[str, Any]:
        """Follow `prompt_id` to its end within `run_timeout`; its `/history` entry when it succeeded.

        On any exception while following (timeout, cancellation, ComfyUI gone) the prompt is interrupted
        and taken off the queue. Raises what `run` raises.
        """
        http, connection = self._api(), self._ws()
        timeout = self.settings.run_timeout
        started = time.monotonic()
        try:
            outcome, entry = follow(
                PromptFollower(prompt_id, workflow),
                connection,
                http,
                deadline=started + timeout if timeout else None,
                timeout=timeout,
                check_alive=lambda: self._check_alive(prompt_id),
            )
        except BaseException:
            connection.close()  # an exception may have landed mid-frame
            self._abandon(prompt_id)
            raise
        logger.info(
            "prompt %s ended (%s) after %.1f s", prompt_id, outcome.status, time.monotonic() - started
        )
        if outcome.status == "interrupted":
            raise PromptInterruptedError(outcome.data)
        if outcome.status == "error":
            raise self._execution_error(outcome.data, workflow)
        return entry

    def outputs(self, entry: Mapping[str, Any] | str, *, include_temp: bool = False) -> list[Output]:
        """The outputs of a history entry (or prompt id): files in ComfyUI's directories when it runs
        here, else fetched through `/view` into `COMFYUI_OUTPUT_DIR`."""
        http = self._api()
        if isinstance(entry, str):
            found = http.history(entry)
            if found is None:
                raise ComfyRunError(f"ComfyUI has no history for prompt {entry}; it has not finished")
            entry = found
        s = self.settings
        if self._process is not None:
            local = {"output": s.output_dir, "input": s.input_dir, "temp": s.temp_dir / "temp"}
            return collect_outputs(entry, include_temp=include_temp, local_dirs=local)
        return collect_outputs(entry, include_temp=include_temp, http=http, download_dir=s.output_dir)

    def upload_inputs(self, folder: Path) -> list[str]:
        """Make the files of `folder` (the local input folder) ComfyUI's inputs. A ComfyUI started here
        reads that folder itself, so nothing is sent; an attached one (`COMFYUI_URL`) gets each file
        through `/upload/image`, keeping subfolders. Returns the names uploaded."""
        if self._process is not None:
            return []
        http, uploaded = self._api(), []
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            subfolder = path.parent.relative_to(folder).as_posix()
            http.upload_input(path, subfolder="" if subfolder == "." else subfolder)
            uploaded.append(path.relative_to(folder).as_posix())
        if uploaded:
            logger.info("uploaded %d input file(s) to ComfyUI at %s", len(uploaded), http.base_url)
        return uploaded

    def object_info(self) -> dict[str, Any]:
        """ComfyUI's node classes and their inputs (types, ranges, options), as `/object_info` says."""
        return self._api().object_info()

    def interrupt(self, prompt_id: str | None = None) -> None:
        """Stop the running prompt (only `prompt_id`, if given) at its next step."""
        self._api().interrupt(prompt_id)

    def clear_queue(self) -> None:
        """Drop every pending prompt (the running one continues; interrupt it)."""
        self._api().clear_queue()

    def free_memory(self, *, unload_models: bool = True, free_memory: bool = True) -> None:
        """Unload models and drop cached node outputs, so the next prompt reloads weights from disk."""
        self._api().free(unload_models=unload_models, free_memory=free_memory)

    # -- internals ------------------------------------------------------------------------------------

    def _repair_and_rerun(self, workflow: Workflow, corrupt: WeightCorruptError) -> dict[str, Any]:
        store = self._weights()
        paths = []
        for folder, name in corrupt.files:
            if folder is None:
                raise WeightCorruptError(
                    corrupt.data,
                    files=corrupt.files,
                    tried=f"The model folder node {corrupt.node_id} reads '{name}' from is unknown, so it "
                    "was not fetched again; replace the file by hand, or add its loader to the manifest.",
                ) from corrupt
            logger.warning(
                "%s/%s looks corrupt (%s); fetching it again", folder, name, corrupt.exception_type
            )
            try:
                paths.append(store.repair(name, folder))
            except WeightkitError as exc:
                raise WeightCorruptError(
                    corrupt.data, files=corrupt.files, tried=f"Fetching it again failed: {exc}"
                ) from exc
        # ComfyUI would otherwise keep a loader's cached output from the old file. It applies /free between
        # prompts, and its worker may take a prompt queued right after first; the loader that failed has
        # no cached output, so the re-run reads the new file either way.
        self.free_memory()
        try:
            return self.wait(self.submit(workflow), workflow=workflow)
        except WeightCorruptError as again:
            raise WeightCorruptError(
                again.data,
                files=again.files,
                paths=paths,
                tried="It was quarantined, fetched again and verified, and ComfyUI still cannot load it: the "
                "published file may itself be broken, or this node needs a different file.",
            ) from again

    def _execution_error(self, data: Mapping[str, Any], workflow: Workflow | None) -> ExecutionError:
        missing = missing_weight(data)
        if missing is not None:
            return WeightMissingError(data, folder=missing[0], name=missing[1])
        if looks_corrupt(data):
            refs = self.store.required(workflow) if self.store is not None and workflow is not None else None
            tried = (
                "" if self.store is not None else "No weight store was given, so it was not fetched again."
            )
            return WeightCorruptError(data, files=suspect_files(data, refs), tried=tried)
        return ExecutionError(data)

    def _check_alive(self, prompt_id: str) -> None:
        if self._process is not None and (code := self._process.exit_code()) is not None:
            raise ComfyUIDiedError(exit_code=code, prompt_id=prompt_id, log_tail=self._process.log_tail())

    def _abandon(self, prompt_id: str) -> None:
        """Take `prompt_id` off ComfyUI's queue and interrupt it if it runs; never raises a ComfyRunError."""
        if self._http is None or (self._process is not None and self._process.exit_code() is not None):
            return
        quick = ComfyHTTP(self._http.base_url, timeout=2.0)
        try:
            quick.delete_from_queue([prompt_id])
            quick.interrupt(prompt_id)
            logger.warning("interrupted prompt %s on ComfyUI", prompt_id)
        except ComfyRunError as exc:
            logger.warning("could not interrupt prompt %s: %s", prompt_id, exc)

    def _api(self) -> ComfyHTTP:
        if self._http is None:
            raise RuntimeError("ComfyUI is not started: call start() first")
        return self._http

    def _ws(self) -> Connection:
        self._api()
        assert self._connection is not None
        return self._connection

    def _weights(self) -> WeightStore:
        if self.store is None:
            raise RuntimeError("this ComfyUI was created without a weight store")
        return self.store
