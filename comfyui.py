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

import atexit
import logging
import shutil
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from comfyrun.errors import (
    ComfyRunError,
    OutputFileMissingError,
    PromptInterruptedError,
    RunTimeoutError,
    StartStoppedError,
    WeightCorruptError,
    describe_node_errors,
    parse_node_errors,
)
from comfyrun.follow import Connection, PromptFollower, follow
from comfyrun.http import ComfyHTTP
from comfyrun.launch import CACHE_BARRIER, prepare_folders
from comfyrun.nodeclasses import ClassHint, unknown_class_error, unknown_classes
from comfyrun.outputs import Output, collect_outputs
from comfyrun.repair import fetch_again
from comfyrun.settings import RuntimeSettings
from comfyrun.supervisor import Supervisor
from comfyrun.uploads import upload_folder
from comfyrun.weightfaults import WeightRefLike, execution_error
from comfyrun.weightstore import WeightStore

__all__ = ["ComfyUI", "WeightStore"]

logger = logging.getLogger(__name__)

Workflow = Mapping[str, Any]


class ComfyUI:
    """One ComfyUI server, started here or attached to, and the workflows run on it.

    The constructor only stores its arguments; `start()` launches or attaches.
    """

    def __init__(
        self,
        settings: RuntimeSettings,
        *,
        store: WeightStore | None = None,
        env: Mapping[str, str] | None = None,
        model_paths_files: Sequence[Path] = (),
    ) -> None:
        """`env` is added to ComfyUI's environment and `model_paths_files` are given to it after the
        user's `extra_model_paths` and before the weights directory's (both for custom node packs)."""
        self.settings = settings
        self.store = store
        self.env = dict(env or {})
        self.model_paths_files = tuple(model_paths_files)
        self.client_id = uuid.uuid4().hex
        self._supervisor: Supervisor | None = None
        self._attached: ComfyHTTP | None = None
        self._connection: Connection | None = None
        self._object_info: dict[str, Any] | None = None
        self._lock = threading.Lock()  # start() and stop() may run in two threads (setup's preload fails)
        self._starting = self._stop_asked = False

    # -- server -------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._api().base_url

    @property
    def pid(self) -> int | None:
        """The ComfyUI process started here (the current one, after a restart); None when attached."""
        process = self._supervisor.process if self._supervisor is not None else None
        return process.pid if process is not None else None

    def start(self) -> None:
        """Start ComfyUI (or check that `COMFYUI_URL` answers) and wait until it serves requests; a
        ComfyUI started here is started again if it dies (`comfyrun.supervisor`).

        Raises `ComfyUIStartError` with ComfyUI's last log lines, or `ComfyUIUnavailableError`; or
        `StartStoppedError` when `stop()`, called from another thread, ended the start.
        """
        if self.settings.url:
            http = ComfyHTTP(self.settings.url)
            http.system_stats()
            logger.info("attached to ComfyUI at %s", self.settings.url)
            self._attached = http
            if (own := self.settings.own_folder()) is not None:  # local inputs and /view downloads
                atexit.register(shutil.rmtree, own, ignore_errors=True)
            return
        with self._lock:
            self._starting, self._stop_asked = True, False
        try:
            self._start_here()
        finally:
            with self._lock:
                self._starting = False

    def _start_here(self) -> None:
        write_paths = self.store.write_extra_model_paths if self.store is not None else None
        paths_files = prepare_folders(self.settings, write_paths, extra=self.model_paths_files)
        supervisor = Supervisor(
            self.settings, model_paths_files=paths_files, env=self.env, on_restart=self._forget_server
        )
        with self._lock:  # known before it answers, so that `stop()` from another thread ends the start
            if self._stop_asked:
                raise StartStoppedError("ComfyUI was stopped before it started")
            self._supervisor = supervisor
        try:
            supervisor.start()
        except BaseException:
            with self._lock:
                if self._supervisor is supervisor:
                    self._supervisor = None
            raise

    def stop(self) -> None:
        """Close the websocket and stop the ComfyUI started here (an attached one keeps running), also
        while another thread is starting it; remove this process's own folders (`own_folder`)."""
        with self._lock:
            self._stop_asked = self._starting
            supervisor, connection = self._supervisor, self._connection
            self._supervisor = self._attached = self._connection = None
        if connection is not None:
            connection.close()
        if supervisor is not None:
            supervisor.stop()
        own = self.settings.own_folder()
        if own is not None:
            shutil.rmtree(own, ignore_errors=True)

    def check_health(self) -> None:
        """Raise `ComfyUIDownError` when the ComfyUI started here died and cannot be brought back, or
        `ComfyUIUnavailableError` when an attached one does not answer within 2 s."""
        if self._supervisor is not None:
            self._supervisor.check_health()
        elif self._attached is not None:
            self._attached.system_stats(timeout=2.0)

    def import_failures(self) -> dict[str, str]:
        """Custom node packs the running ComfyUI failed to import: `{pack folder name: why}` (from its
        start-up log; empty when attached, whose log is not ours to read)."""
        process = self._supervisor.process if self._supervisor is not None else None
        return process.import_failures.as_dict() if process is not None else {}

    def _forget_server(self) -> None:
        """After a restart: what was learnt from the old ComfyUI no longer holds."""
        self._object_info = None
        if self._connection is not None:
            self._connection.close()

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
            self.reset_cache()
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
        http, connection, supervisor = self._api(), self._ws(), self._supervisor
        process = supervisor.process if supervisor is not None else None
        timeout = self.settings.run_timeout
        started = time.monotonic()
        try:
            outcome, entry = follow(
                PromptFollower(prompt_id, workflow),
                connection,
                http,
                deadline=started + timeout if timeout else None,
                timeout=timeout,
                check_alive=lambda: supervisor.check_alive(process, prompt_id) if supervisor else None,
            )
        except BaseException as exc:
            connection.close()  # an exception may have landed mid-frame
            failed = self._abandon(prompt_id)
            if isinstance(exc, RunTimeoutError) and failed is not None:
                raise RunTimeoutError(
                    prompt_id=prompt_id, timeout=exc.timeout, node=exc.node, not_interrupted=failed
                ) from exc
            raise
        logger.info(
            "prompt %s ended (%s) after %.1f s", prompt_id, outcome.status, time.monotonic() - started
        )
        if outcome.status == "interrupted":
            raise PromptInterruptedError(outcome.data)
        if outcome.status == "error":
            refs = self.store.required(workflow) if self.store is not None and workflow is not None else None
            raise execution_error(outcome.data, refs, have_store=self.store is not None)
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
        if self._supervisor is not None:
            local = {"output": s.output_dir, "input": s.input_dir, "temp": s.temp_dir / "temp"}
            return collect_outputs(entry, include_temp=include_temp, local_dirs=local)
        return collect_outputs(entry, include_temp=include_temp, http=http, download_dir=s.output_dir)

    def upload_inputs(self, folder: Path, workflow: Workflow) -> tuple[dict[str, Any], list[str]]:
        """Make the files of `folder` (the local input folder) `workflow`'s inputs; the workflow to run
        and the names uploaded. A ComfyUI started here reads that folder itself: nothing is sent. An
        attached one (`COMFYUI_URL`) gets them in a subfolder of this prediction's own, which the
        workflow is rewritten to name (`comfyrun.uploads`: ComfyUI cannot delete an upload)."""
        if self._supervisor is not None:
            return dict(workflow), []
        http = self._api()
        rewritten, uploaded = upload_folder(http, folder, workflow)
        if uploaded:
            logger.info("uploaded %d input file(s) to ComfyUI at %s", len(uploaded), http.base_url)
        return rewritten, uploaded

    def object_info(self, *, refresh: bool = False) -> dict[str, Any]:
        """ComfyUI's node classes and their inputs (types, ranges, options), as `/object_info` says;
        asked once, then again only with `refresh` or after ComfyUI was started again."""
        if self._object_info is None or refresh:
            self._object_info = self._api().object_info()
        return self._object_info

    def check_node_classes(self, workflow: Workflow, *, hint_for: ClassHint | None = None) -> None:
        """Raise `UnknownNodeClassError` (one paragraph naming each class, its nodes, and where it comes
        from if `hint_for` knows) when ComfyUI lacks a class the workflow uses. Asked of the cached
        `/object_info`, and of a fresh one before failing."""
        missing = unknown_classes(workflow, self.object_info())
        if missing:
            missing = unknown_classes(workflow, self.object_info(refresh=True))
        if missing:
            known = self.object_info()
            raise unknown_class_error(
                missing, known, import_failures=self.import_failures(), hint_for=hint_for
            )

    def interrupt(self, prompt_id: str | None = None) -> None:
        """Stop the running prompt (only `prompt_id`, if given) at its next step."""
        self._api().interrupt(prompt_id)

    def clear_queue(self) -> None:
        """Drop every pending prompt (the running one continues; interrupt it)."""
        self._api().clear_queue()

    def free_memory(self, *, unload_models: bool = True, free_memory: bool = True) -> None:
        """Ask ComfyUI to unload models and drop cached node outputs once its worker is next idle (it
        may run a prompt queued meanwhile first: `reset_cache` waits for that)."""
        self._api().free(unload_models=unload_models, free_memory=free_memory)

    def reset_cache(self) -> None:
        """Unload models and drop every cached node output before the next prompt runs, for certain.

        `POST /free` only sets flags that ComfyUI's worker reads after its next wait for work; a tiny
        prompt (`CACHE_BARRIER`) followed to its end makes sure that wait is over: the worker applies the
        flags after finishing it and before taking the prompt queued next."""
        self.free_memory()
        barrier = self.submit(CACHE_BARRIER)
        self.wait(barrier, workflow=CACHE_BARRIER)
        logger.info("ComfyUI's models are unloaded and its cache of node results is cleared")

    # -- internals ------------------------------------------------------------------------------------

    def _repair_and_rerun(self, workflow: Workflow, corrupt: WeightCorruptError) -> dict[str, Any]:
        paths = fetch_again(self._weights(), corrupt)
        self.reset_cache()  # or ComfyUI might keep a loader's cached output from the old file
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

    def _abandon(self, prompt_id: str) -> str | None:
        """Take `prompt_id` off ComfyUI's queue and interrupt it if it runs; why that failed, or None.
        Never raises a ComfyRunError."""
        process = self._supervisor.process if self._supervisor is not None else None
        if (self._supervisor is None and self._attached is None) or (
            process is not None and process.exit_code() is not None
        ):
            return None
        try:
            ComfyHTTP(self._api().base_url, timeout=2.0).abandon(prompt_id)
        except ComfyRunError as exc:
            logger.warning("could not interrupt prompt %s: %s", prompt_id, exc)
            return str(exc)
        logger.warning("interrupted prompt %s on ComfyUI", prompt_id)
        return None

    def _api(self) -> ComfyHTTP:
        if self._attached is not None:
            return self._attached
        if self._supervisor is None:
            raise RuntimeError("ComfyUI is not started: call start() first")
        return ComfyHTTP(self._supervisor.wait_ready().url)  # it may be starting again after it died

    def _ws(self) -> Connection:
        """The websocket to the ComfyUI running now (a new one if it came back on another port)."""
        url = self._api().ws_url(self.client_id)
        if self._connection is None or self._connection.url != url:
            if self._connection is not None:
                self._connection.close()
            self._connection = Connection(url)
        return self._connection

    def _weights(self) -> WeightStore:
        if self.store is None:
            raise RuntimeError("this ComfyUI was created without a weight store")
        return self.store
