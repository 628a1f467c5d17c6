"""Run one prompt and report it message by message, as ComfyUI's PromptExecutor does.

The messages and their order are ComfyUI's: `execution_start`, `execution_cached`, then per node
`progress_state` (running), `executing`, `progress`/`progress_state` per step, `executed` (nodes with
a UI output), `progress_state` (finished); then `execution_success`, or `execution_error` /
`execution_interrupted` at the failing node. A cached output node is not run, but its `executed` is
sent again. Messages go to the client that queued the prompt (to everyone if it gave no client id).
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from enum import Enum
from typing import Any

from .caching import Cache, input_signatures
from .catalog import Catalog
from .errors import InterruptProcessingException, full_type_name
from .folders import Folders
from .graph import ExecutionList, Prompt, node_inputs
from .node_api import NodeContext, NodeOutput, Preview
from .nodes import NodeLibrary, not_implemented
from .progress import UNENCODED_PREVIEW_IMAGE, Outbox, Progress

log = logging.getLogger(__name__)


class Interrupt:
    """`POST /interrupt`'s flag: consumed by the first check that sees it, cleared when a prompt starts."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def request(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def wait(self, seconds: float) -> None:
        """Sleep, but wake as soon as an interrupt is requested."""
        if seconds > 0:
            self._event.wait(seconds)

    def raise_if_requested(self) -> None:
        if self._event.is_set():
            self._event.clear()
            raise InterruptProcessingException()


class _Result(Enum):
    SUCCESS = 0
    FAILURE = 1


class PromptExecutor:
    """Runs prompts one at a time (from the queue's worker thread), keeping ComfyUI's caches between them."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        catalog: Catalog,
        library: NodeLibrary,
        folders: Folders,
        interrupt: Interrupt,
        step_delay: float,
        disable_metadata: bool,
        keep_cache: bool,
    ) -> None:
        self._outbox = outbox
        self._catalog = catalog
        self._library = library
        self._folders = folders
        self._interrupt = interrupt
        self._step_delay = step_delay
        self._disable_metadata = disable_metadata
        self._keep_cache = keep_cache
        self.success = True
        self.status_messages: list[tuple[str, dict[str, Any]]] = []
        self.history_result: dict[str, Any] = {}
        self.reset()

    def reset(self) -> None:
        """Forget every cached output (ComfyUI does this on `POST /free` with `free_memory`)."""
        self._outputs = Cache(keep_between_prompts=self._keep_cache)
        self._ui = Cache(keep_between_prompts=self._keep_cache)
        self._objects: dict[tuple[str, str], dict[str, Any]] = {}

    def _add_message(self, event: str, data: dict[str, Any], *, broadcast: bool) -> None:
        data = {**data, "timestamp": int(time.time() * 1000)}
        self.status_messages.append((event, data))
        if self._outbox.client_id is not None or broadcast:
            self._outbox.send_sync(event, data, self._outbox.client_id)

    def execute(
        self, prompt: Prompt, prompt_id: str, extra_data: dict[str, Any], execute_outputs: list[str]
    ) -> None:
        """Run the prompt; afterwards `success`, `status_messages` and `history_result` describe the run."""
        self._interrupt.clear()
        self._outbox.client_id = extra_data.get("client_id")
        self.status_messages = []
        self.history_result = {"outputs": {}, "meta": {}}
        self._add_message("execution_start", {"prompt_id": prompt_id}, broadcast=False)

        progress = Progress(self._outbox, prompt_id)
        keys = input_signatures(prompt, self._fingerprints(prompt), self._node_id_matters(prompt))
        self._outputs.set_prompt(keys)
        self._ui.set_prompt(keys)
        wanted = {(node_id, node["class_type"]) for node_id, node in prompt.items()}
        self._objects = {key: state for key, state in self._objects.items() if key in wanted}

        cached = [node_id for node_id in prompt if self._outputs.get(node_id) is not None]
        self._add_message("execution_cached", {"nodes": cached, "prompt_id": prompt_id}, broadcast=False)

        executed: list[str] = []
        current_outputs = self._outputs.node_ids()
        run_list = ExecutionList(prompt, self._catalog, lambda n: self._outputs.get(n) is not None)
        for node_id in execute_outputs:
            run_list.add_node(node_id)
        while not run_list.is_empty():
            node_id = run_list.next_node()
            if node_id is None:
                error = {
                    "node_id": run_list.waiting()[0],
                    "exception_message": "Dependency cycle detected",
                    "exception_type": "graph.DependencyCycleError",
                    "traceback": [],
                    "current_inputs": [],
                }
                self._report_failure(prompt, prompt_id, current_outputs, executed, error, RuntimeError())
                break
            result, error, ex = self._execute_node(prompt, prompt_id, node_id, extra_data, progress, executed)
            self.success = result is not _Result.FAILURE
            if result is _Result.FAILURE:
                self._report_failure(prompt, prompt_id, current_outputs, executed, error, ex)
                break
            run_list.complete(node_id)
        else:
            self._add_message("execution_success", {"prompt_id": prompt_id}, broadcast=False)

        ui_outputs: dict[str, Any] = {}
        meta: dict[str, Any] = {}
        for node_id in self._ui.node_ids():
            entry = self._ui.get(node_id)
            if entry is not None:
                ui_outputs[node_id] = entry["output"]
                meta[node_id] = entry["meta"]
        self.history_result = {"outputs": ui_outputs, "meta": meta}
        self._outbox.last_node_id = None

    def _fingerprints(self, prompt: Prompt) -> Callable[[str], Any]:
        """Each node's IS_CHANGED answer, asked once per prompt (False for a class without one)."""
        answers: dict[str, Any] = {}

        def fingerprint(node_id: str) -> Any:
            if node_id not in answers:
                answers[node_id] = self._fingerprint(prompt, node_id)
            return answers[node_id]

        return fingerprint

    def _fingerprint(self, prompt: Prompt, node_id: str) -> Any:
        definition = self._library.get(prompt[node_id]["class_type"])
        if definition is None or definition.fingerprint is None:
            return False
        values, _ = node_inputs(prompt, node_id, self._catalog, None, {})
        try:
            return [definition.fingerprint(self._folders, **{k: v[0] for k, v in values.items()})]
        except Exception as ex:
            log.warning("WARNING: %s", ex)
            return float("nan")

    def _node_id_matters(self, prompt: Prompt) -> Callable[[str], bool]:
        def matters(node_id: str) -> bool:
            return "UNIQUE_ID" in self._catalog.hidden_inputs(prompt[node_id]["class_type"]).values()

        return matters

    def _execute_node(
        self,
        prompt: Prompt,
        prompt_id: str,
        node_id: str,
        extra_data: dict[str, Any],
        progress: Progress,
        executed: list[str],
    ) -> tuple[_Result, dict[str, Any] | None, BaseException | None]:
        """Run one node (or re-announce its cached output); a failure comes back as ComfyUI's error."""
        outbox = self._outbox
        class_type = prompt[node_id]["class_type"]
        if self._outputs.get(node_id) is not None:
            self._announce_cached(node_id, prompt_id, progress)
            return _Result.SUCCESS, None, None

        values: dict[str, list[Any]] | None = None
        try:
            progress.start(node_id)
            values, _ = node_inputs(prompt, node_id, self._catalog, self._outputs.get, extra_data)
            if outbox.client_id is not None:
                outbox.last_node_id = node_id
                data = {"node": node_id, "display_node": node_id, "prompt_id": prompt_id}
                outbox.send_sync("executing", data, outbox.client_id)
            state = self._objects.setdefault((node_id, class_type), {})
            results = self._run(class_type, node_id, prompt_id, values, state, progress)
            self._keep_outputs(node_id, prompt_id, results)
        except InterruptProcessingException as ex:
            log.info("Processing interrupted")
            return _Result.FAILURE, {"node_id": node_id}, ex
        except Exception as ex:
            log.error("!!! Exception during processing !!! %s", ex)
            log.error(traceback.format_exc())
            return _Result.FAILURE, _exception_error(node_id, ex, values), ex
        progress.finish(node_id)
        executed.append(node_id)
        return _Result.SUCCESS, None, None

    def _announce_cached(self, node_id: str, prompt_id: str, progress: Progress) -> None:
        """A cached node is not run, but its `executed` (with the cached UI output) is sent again."""
        outbox = self._outbox
        if outbox.client_id is not None:
            cached_ui = self._ui.get(node_id) or {}
            data = {
                "node": node_id,
                "display_node": node_id,
                "output": cached_ui.get("output"),
                "prompt_id": prompt_id,
            }
            outbox.send_sync("executed", data, outbox.client_id)
        progress.finish(node_id)

    def _keep_outputs(self, node_id: str, prompt_id: str, results: list[NodeOutput]) -> None:
        """Cache a node's outputs and its UI output; a UI output is also sent as `executed`."""
        outbox = self._outbox
        output_data = [list(column) for column in zip(*(r.result for r in results if r.result), strict=True)]
        uis = [r.ui for r in results if r.ui is not None]
        output_ui = {key: [item for ui in uis for item in ui[key]] for key in uis[0]} if uis else {}
        if output_ui:
            meta = {
                "node_id": node_id,
                "display_node": node_id,
                "parent_node": None,
                "real_node_id": node_id,
            }
            self._ui.set(node_id, {"meta": meta, "output": output_ui})
            if outbox.client_id is not None:
                data = {
                    "node": node_id,
                    "display_node": node_id,
                    "output": output_ui,
                    "prompt_id": prompt_id,
                }
                outbox.send_sync("executed", data, outbox.client_id)
        self._outputs.set(node_id, output_data)

    def _run(
        self,
        class_type: str,
        node_id: str,
        prompt_id: str,
        values: dict[str, list[Any]],
        state: dict[str, Any],
        progress: Progress,
    ) -> list[NodeOutput]:
        """Call the node once per list index (inputs shorter than the longest repeat their last value)."""

        def hook(value: int, total: int, preview: Preview | None) -> None:
            self._interrupt.raise_if_requested()
            progress.update(node_id, value, total, preview)
            data = {"value": value, "max": total, "prompt_id": prompt_id, "node": node_id}
            self._outbox.send_sync("progress", data, self._outbox.client_id)
            if preview is not None and not self._outbox.supports_preview_metadata(self._outbox.client_id):
                self._outbox.send_sync(UNENCODED_PREVIEW_IMAGE, preview, self._outbox.client_id)

        context = NodeContext(
            folders=self._folders,
            unique_id=node_id,
            disable_metadata=self._disable_metadata,
            step_delay=self._step_delay,
            state=state,
            progress=hook,
            wait=self._interrupt.wait,
        )
        definition = self._library.get(class_type)
        length = max((len(v) for v in values.values()), default=0)
        results = []
        for index in range(max(length, 1)):
            self._interrupt.raise_if_requested()
            if definition is None:
                raise not_implemented(class_type)
            arguments = {name: v[index if index < len(v) else -1] for name, v in values.items()}
            results.append(definition.run(context, **arguments))
        return results

    def _report_failure(
        self,
        prompt: Prompt,
        prompt_id: str,
        current_outputs: list[str],
        executed: list[str],
        error: dict[str, Any] | None,
        ex: BaseException | None,
    ) -> None:
        assert error is not None
        node_id = error["node_id"]
        message = {
            "prompt_id": prompt_id,
            "node_id": node_id,
            "node_type": prompt[node_id]["class_type"],
            "executed": list(executed),
        }
        if isinstance(ex, InterruptProcessingException):
            self._add_message("execution_interrupted", message, broadcast=True)
            return
        message.update(
            exception_message=error["exception_message"],
            exception_type=error["exception_type"],
            traceback=error["traceback"],
            current_inputs=error["current_inputs"],
            current_outputs=list(current_outputs),
        )
        self._add_message("execution_error", message, broadcast=False)


def _exception_error(node_id: str, ex: Exception, values: dict[str, list[Any]] | None) -> dict[str, Any]:
    """The `execution_error` fields of a node that raised: message, type, traceback and its inputs."""
    current_inputs = {name: [_format_value(v) for v in vals] for name, vals in (values or {}).items()}
    return {
        "node_id": node_id,
        "exception_message": f"{ex}\n",
        "exception_type": full_type_name(type(ex)),
        "traceback": traceback.format_tb(ex.__traceback__),
        "current_inputs": current_inputs,
    }


def _format_value(value: Any) -> Any:
    if value is None or isinstance(value, (int, float, bool, str)):
        return value
    return str(value)
