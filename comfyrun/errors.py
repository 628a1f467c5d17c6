"""Typed errors for running workflows on ComfyUI: each carries the fields a caller needs and reads as one
paragraph a user can act on.

Every error subclasses `ComfyRunError` and a stdlib category, so callers can catch either.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "ComfyRunError",
    "ComfyUIDiedError",
    "ComfyUIDownError",
    "ComfyUIHTTPError",
    "ComfyUIStartError",
    "ComfyUIUnavailableError",
    "ExecutionError",
    "NodeError",
    "PromptInterruptedError",
    "PromptRejectedError",
    "RunTimeoutError",
    "StartStoppedError",
    "UnknownNodeClassError",
    "WeightCorruptError",
    "WeightMissingError",
    "describe_node_errors",
    "parse_node_errors",
]

_MAX_OPTIONS_SHOWN = 8


class ComfyRunError(Exception):
    """Base class for every error raised while starting ComfyUI or running a workflow on it."""

    def __str__(self) -> str:  # LookupError and friends would otherwise repr() the message
        return str(self.args[0]) if self.args else ""


class OutputFileMissingError(ComfyRunError):
    """ComfyUI listed an output file that is not there: a cached node's file, deleted since it was made."""

    def __init__(self, message: str, *, path: object) -> None:
        self.path = path
        super().__init__(message)


class StartStoppedError(ComfyRunError):
    """A start of ComfyUI that `stop()`, called from another thread, ended (setup failed meanwhile)."""


def _log_tail(lines: Sequence[str]) -> str:
    if not lines:
        return " ComfyUI printed nothing."
    return " Its last log lines:\n" + "\n".join(f"  {line}" for line in lines)


class ComfyUIStartError(ComfyRunError, RuntimeError):
    """ComfyUI exited, or never answered, while starting; carries its exit code and last log lines."""

    def __init__(
        self, reason: str, *, command: Sequence[str], exit_code: int | None, log_tail: Sequence[str]
    ) -> None:
        self.reason = reason
        self.command = tuple(command)
        self.exit_code = exit_code
        self.log_tail = tuple(log_tail)
        super().__init__(
            f"ComfyUI did not start: {reason}. Check COMFYUI_PATH and the ComfyUI installation; the command "
            f"was: {' '.join(self.command)}.{_log_tail(self.log_tail)}"
        )


def describe_exit(exit_code: int | None) -> str:
    """`exited with code 3`, or `was killed by SIGKILL` (how the out-of-memory killer ends a process)."""
    if exit_code is not None and exit_code < 0:
        try:
            return f"was killed by {signal.Signals(-exit_code).name}"
        except ValueError:
            pass
    return f"exited with code {exit_code}"


class ComfyUIDiedError(ComfyRunError, RuntimeError):
    """The ComfyUI process exited while a prompt was running; `restarting` says whether it is started
    again for the next one (not when `COMFYUI_RESTART_LIMIT` is used up, or 0)."""

    def __init__(
        self, *, exit_code: int | None, prompt_id: str | None, log_tail: Sequence[str], restarting: bool
    ) -> None:
        self.exit_code = exit_code
        self.prompt_id = prompt_id
        self.log_tail = tuple(log_tail)
        self.restarting = restarting
        during = f" while running prompt {prompt_id}" if prompt_id else ""
        after = (
            "It is being started again for the next prediction."
            if restarting
            else "It is not started again: it was restarted COMFYUI_RESTART_LIMIT times within "
            "COMFYUI_RESTART_WINDOW (or the limit is 0); restart the model."
        )
        super().__init__(
            f"ComfyUI {describe_exit(exit_code)} (exit code {exit_code}){during}; it may have run out of "
            f"memory or crashed in a custom node. {after}{_log_tail(self.log_tail)}"
        )


class ComfyUIDownError(ComfyRunError, RuntimeError):
    """ComfyUI died too often to be started again (or could not be): the replica cannot predict."""

    def __init__(self, reason: str, *, log_tail: Sequence[str] = ()) -> None:
        self.reason = reason
        self.log_tail = tuple(log_tail)
        super().__init__(
            f"ComfyUI is down and is not started again: {reason}. Restart the model; if this repeats, the "
            "workflows need more memory than this machine has, or a custom node crashes ComfyUI "
            f"(COMFYUI_RESTART_LIMIT, COMFYUI_RESTART_WINDOW).{_log_tail(self.log_tail)}"
        )


class ComfyUIUnavailableError(ComfyRunError, ConnectionError):
    """ComfyUI cannot be reached over HTTP or its websocket."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"Cannot reach ComfyUI at {url}: {reason}. Is the server running?")


class ComfyUIHTTPError(ComfyRunError, RuntimeError):
    """ComfyUI answered a request with an unexpected status (not a prompt validation error)."""

    def __init__(self, method: str, url: str, status: int, body: str) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.body = body
        excerpt = " ".join(body.split())[:300]
        super().__init__(
            f"ComfyUI answered {method} {url} with HTTP {status}"
            + (f": {excerpt}" if excerpt else "")
            + ". If the request held a workflow, check that it is API-format JSON."
        )


@dataclass(frozen=True)
class NodeError:
    """One reason ComfyUI gave for rejecting one node's input."""

    node_id: str
    class_type: str
    type: str
    message: str
    details: str = ""
    input_name: str | None = None
    received_value: Any = None
    options: tuple[Any, ...] | None = None

    def describe(self) -> str:
        where = f"input '{self.input_name}'" if self.input_name else "the node"
        if self.type == "value_not_in_list" and self.input_name:
            return f"{where}: {self.received_value!r} is {self._choices()}"
        if self.type == "required_input_missing":
            return f"{where} is required but missing"
        if self.type == "invalid_input_type" and self.input_name:
            return f"{where}: {self.message} (received {self.received_value!r})"
        if self.type in ("value_smaller_than_min", "value_bigger_than_max") and self.input_name:
            return f"{where}: {self.message}"
        detail = f" ({self.details})" if self.details and self.details != self.input_name else ""
        return f"{where}: {self.message}{detail}" if self.input_name else f"{self.message}{detail}"

    def _choices(self) -> str:
        if self.options is None:
            return f"not an allowed value ({self.details})"
        if not self.options:
            return "not available: ComfyUI offers no files or values for this input"
        if len(self.options) > _MAX_OPTIONS_SHOWN:
            return f"not one of the {len(self.options)} values ComfyUI offers"
        return "not one of " + ", ".join(repr(option) for option in self.options)


def parse_node_errors(raw: Mapping[str, Any]) -> tuple[NodeError, ...]:
    """ComfyUI's `node_errors` object as `NodeError`s, one per reason."""
    found = []
    for node_id, body in raw.items():
        body = body if isinstance(body, Mapping) else {}
        class_type = str(body.get("class_type", "?"))
        for error in body.get("errors", ()):
            extra = error.get("extra_info") or {}
            config = extra.get("input_config")
            options = None
            if isinstance(config, list) and config:
                if isinstance(config[0], list):
                    options = tuple(config[0])
                elif len(config) > 1 and isinstance(config[1], Mapping) and "options" in config[1]:
                    options = tuple(config[1]["options"])
            found.append(
                NodeError(
                    node_id=str(node_id),
                    class_type=class_type,
                    type=str(error.get("type", "")),
                    message=str(error.get("message", "")),
                    details=str(error.get("details", "")),
                    input_name=extra.get("input_name"),
                    received_value=extra.get("received_value"),
                    options=options,
                )
            )
    return tuple(found)


def describe_node_errors(node_errors: Sequence[NodeError]) -> str:
    """`Node 2 (ImageScale), input 'x': ...; node 3 (...): ...` in one sentence per node."""
    by_node: dict[tuple[str, str], list[str]] = {}
    for error in node_errors:
        by_node.setdefault((error.node_id, error.class_type), []).append(error.describe())
    return " ".join(
        f"Node {node_id} ({class_type}): {'; '.join(parts)}."
        for (node_id, class_type), parts in by_node.items()
    )


_REJECTION_HINTS = {
    "invalid_prompt": "The node class is not installed in this ComfyUI (a missing custom node?), or the "
    "workflow is not in API format.",
    "prompt_no_outputs": "Add an output node such as SaveImage.",
    "no_prompt": "Send the workflow in API format.",
}


class PromptRejectedError(ComfyRunError, ValueError):
    """ComfyUI refused the workflow (HTTP 400): names each failing node, its class, input and reason."""

    def __init__(self, body: Mapping[str, Any]) -> None:
        raw_error = body.get("error")
        error: Mapping[str, Any] = raw_error if isinstance(raw_error, Mapping) else {}
        self.error_type = str(error.get("type", ""))
        self.reason = str(error.get("message", "")) or "rejected"
        self.details = str(error.get("details", ""))
        raw_nodes = body.get("node_errors")
        self.node_errors = parse_node_errors(raw_nodes if isinstance(raw_nodes, Mapping) else {})
        reason = self.reason.rstrip(".")
        if self.node_errors:
            text = f"{reason}. {describe_node_errors(self.node_errors)} Fix these inputs and run it again."
        else:
            detail = f" ({self.details})" if self.details and self.details != self.reason else ""
            text = f"{reason}{detail}. {_REJECTION_HINTS.get(self.error_type, '')}".rstrip()
        super().__init__(f"ComfyUI rejected the workflow: {text}")


class ExecutionError(ComfyRunError, RuntimeError):
    """A node raised while ComfyUI ran the prompt (`execution_error`)."""

    def __init__(self, data: Mapping[str, Any], *, hint: str = "") -> None:
        self.data = dict(data)
        self.prompt_id = str(data.get("prompt_id", ""))
        self.node_id = str(data.get("node_id", ""))
        self.class_type = str(data.get("node_type", ""))
        self.exception_type = str(data.get("exception_type", ""))
        self.exception_message = str(data.get("exception_message", "")).strip()
        self.current_inputs: dict[str, list[Any]] = dict(data.get("current_inputs") or {})
        self.traceback: tuple[str, ...] = tuple(data.get("traceback") or ())
        short_type = self.exception_type.rsplit(".", 1)[-1] or "error"
        message = f": {self.exception_message}" if self.exception_message else ""
        super().__init__(
            f"ComfyUI failed running node {self.node_id} ({self.class_type}) with {short_type}{message}"
            + (f". {hint}" if hint else "")
        )


class WeightMissingError(ExecutionError):
    """A loader that ComfyUI does not validate asked for a model file that is not on disk."""

    def __init__(self, data: Mapping[str, Any], *, folder: str, name: str) -> None:
        self.folder = folder
        self.name = name
        super().__init__(
            data,
            hint=f"The weight file '{name}' is missing from the '{folder}' model folder: add it to the "
            "weights manifest so it can be fetched, or fix the file name in the workflow",
        )


class WeightCorruptError(ExecutionError):
    """ComfyUI could not load a weight file because its bytes are broken: which file, and what was tried."""

    def __init__(
        self,
        data: Mapping[str, Any],
        *,
        files: Sequence[tuple[str | None, str]],
        tried: str,
        paths: Sequence[Path] = (),
    ) -> None:
        self.files = tuple(files)
        self.tried = tried
        self.paths = tuple(paths)
        names = ", ".join(f"{folder}/{name}" if folder else name for folder, name in self.files) or "unknown"
        super().__init__(data, hint=f"The weight file(s) {names} look corrupt. {tried}")


class PromptInterruptedError(ComfyRunError, RuntimeError):
    """ComfyUI stopped the prompt before it finished (`execution_interrupted`)."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = dict(data)
        self.prompt_id = str(data.get("prompt_id", ""))
        self.node_id = data.get("node_id")
        self.class_type = data.get("node_type")
        where = f" at node {self.node_id} ({self.class_type})" if self.node_id else ""
        super().__init__(f"ComfyUI interrupted prompt {self.prompt_id}{where} before it finished.")


class RunTimeoutError(ComfyRunError, TimeoutError):
    """The prompt ran longer than the configured limit; it was interrupted on ComfyUI, unless
    `not_interrupted` says why that failed."""

    def __init__(
        self, *, prompt_id: str, timeout: float, node: str | None, not_interrupted: str | None = None
    ) -> None:
        self.prompt_id = prompt_id
        self.timeout = timeout
        self.node = node
        self.not_interrupted = not_interrupted
        at = f" while node {node} was running" if node else ""
        done = (
            "it was interrupted on ComfyUI"
            if not_interrupted is None
            else f"interrupting it on ComfyUI failed ({not_interrupted}), so it may still be running"
        )
        super().__init__(
            f"The workflow did not finish within {timeout:g} s{at}; {done}. Raise COMFYUI_RUN_TIMEOUT if it "
            "needs longer."
        )


class UnknownNodeClassError(ComfyRunError, ValueError):
    """The workflow names node classes this ComfyUI does not have; found before anything is fetched.

    `missing` maps each unknown class to the ids of the nodes using it; `hints` to a sentence on where the
    class comes from (its pack, whether that failed to import) or which known class is near its name.
    """

    def __init__(self, missing: Mapping[str, Sequence[str]], hints: Mapping[str, str]) -> None:
        self.missing = {name: tuple(nodes) for name, nodes in missing.items()}
        self.hints = dict(hints)
        parts = []
        for name, nodes in self.missing.items():
            label = "node" if len(nodes) == 1 else "nodes"
            hint = self.hints.get(name)
            parts.append(f"'{name}' ({label} {', '.join(nodes)})" + (f": {hint}" if hint else ""))
        super().__init__(
            "This ComfyUI has no node class "
            + "; no class ".join(parts)
            + ". Fix the class name, or install the custom node pack that provides it; nothing was "
            "downloaded for this workflow."
        )
