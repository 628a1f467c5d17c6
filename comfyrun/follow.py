"""Following one prompt over ComfyUI's websocket to its end, reconnecting and reconciling with `/history`.

`PromptFollower` is a small state machine fed every message of the websocket; it keeps only what belongs
to its prompt id (ComfyUI may send other prompts' messages to the same client) and logs each node as it
starts and its progress in percent. `follow()` drives it: it reads with a short timeout so a
cancellation (an exception injected into this thread) or the deadline is noticed within a fraction of a
second, checks that ComfyUI is still alive, and, when the socket drops, reconnects and asks `/history`
whether the prompt finished meanwhile. The prompt's history entry is the single source of its outcome and
outputs, so a reconnect can neither lose nor duplicate them.

Message order (see `tests/reference/comfyui/README.md`): `execution_start` → `execution_cached` → per node
[`executing`, `progress`…, `executed`] → `execution_success` | `execution_error` | `execution_interrupted`
→ `executing` with node null, sent after ComfyUI has written the history entry.
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import struct
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import websocket

from comfyrun.errors import ComfyRunError, ComfyUIUnavailableError, RunTimeoutError
from comfyrun.http import ComfyHTTP

__all__ = ["Connection", "PromptFollower", "PromptOutcome", "follow", "outcome_from_history"]

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.2  # longest time one blocking read lasts: bounds how late a cancellation is noticed
RECONNECT_WINDOW = 60.0  # give up on a server whose websocket stays unreachable this long
_PREVIEW_IMAGE, _TEXT, _PREVIEW_WITH_METADATA = 1, 3, 4


@dataclass(frozen=True)
class PromptOutcome:
    """How a prompt ended: `data` is the `execution_error` or `execution_interrupted` message."""

    status: Literal["success", "error", "interrupted"]
    data: Mapping[str, Any] = field(default_factory=dict)


def outcome_from_history(entry: Mapping[str, Any]) -> PromptOutcome:
    """The outcome recorded in a `/history/<id>` entry (its `status.messages` hold the error, if any)."""
    status = entry.get("status") or {}
    for event, data in reversed(status.get("messages") or []):
        if event == "execution_error":
            return PromptOutcome("error", data)
        if event == "execution_interrupted":
            return PromptOutcome("interrupted", data)
    if status.get("status_str", "success") == "success":
        return PromptOutcome("success")
    reason = "ComfyUI recorded the prompt as failed without a reason"
    return PromptOutcome("error", {"exception_message": reason})


class PromptFollower:
    """Everything the websocket says about one prompt id, folded into its progress and end."""

    def __init__(self, prompt_id: str, workflow: Mapping[str, Any] | None = None) -> None:
        self.prompt_id = prompt_id
        self._workflow = workflow or {}
        self.started = False
        self.finished = False  # `executing` with node null: the history entry is written
        self.current_node: str | None = None
        self.cached_nodes: tuple[str, ...] = ()
        self.previews = 0
        self._logged_percent: dict[str, int] = {}

    def on_text(self, message: Mapping[str, Any]) -> None:
        kind = message.get("type")
        data = message.get("data")
        if not isinstance(data, Mapping):
            return
        if data.get("prompt_id", self.prompt_id if kind == "executing" else None) != self.prompt_id:
            return  # another prompt's message; `executing` without an id comes on reconnect
        if kind == "execution_start":
            self.started = True
            logger.info("prompt %s started", self.prompt_id)
        elif kind == "execution_cached":
            self.cached_nodes = tuple(str(node) for node in data.get("nodes") or ())
            if self.cached_nodes:
                logger.info(
                    "cached, not run again: %s", ", ".join(self._describe(n) for n in self.cached_nodes)
                )
        elif kind == "executing":
            self._on_executing(data)
        elif kind == "progress":
            self._on_progress(data)

    def on_binary(self, frame: bytes) -> None:
        """Previews (type 1, or 4 with metadata naming the prompt) and progress text (type 3)."""
        if len(frame) < 8:
            return
        (event,) = struct.unpack(">I", frame[:4])
        if event == _PREVIEW_WITH_METADATA:
            (size,) = struct.unpack(">I", frame[4:8])
            try:
                metadata = json.loads(frame[8 : 8 + size])
            except ValueError:
                return
            if metadata.get("prompt_id", self.prompt_id) != self.prompt_id:
                return
            self.previews += 1
            logger.debug(
                "preview %d from node %s (%s)",
                self.previews,
                metadata.get("node_id"),
                metadata.get("image_type"),
            )
        elif event == _PREVIEW_IMAGE and self.started and not self.finished:
            self.previews += 1
            logger.debug("preview %d from node %s", self.previews, self.current_node)
        elif event == _TEXT and self.started and not self.finished:
            (size,) = struct.unpack(">I", frame[4:8])
            node = frame[8 : 8 + size].decode(errors="replace")
            logger.debug("node %s: %s", node, frame[8 + size :].decode(errors="replace"))

    def _on_executing(self, data: Mapping[str, Any]) -> None:
        node = data.get("node")
        if node is None:
            self.finished = "prompt_id" in data
            return
        node = str(node)
        if node == self.current_node:
            return
        self.started = True
        self.current_node = node
        logger.info("running %s", self._describe(node))

    def _on_progress(self, data: Mapping[str, Any]) -> None:
        value, maximum = data.get("value"), data.get("max")
        if not isinstance(value, (int, float)) or not isinstance(maximum, (int, float)) or maximum <= 0:
            return
        node = str(data.get("node") or self.current_node)
        percent = min(100, int(100 * value / maximum))
        last = self._logged_percent.get(node, -100)
        if percent >= last + 10 or (percent == 100 and last != 100) or percent < last:
            self._logged_percent[node] = percent
            logger.info("%s: %d%% (%g/%g)", self._describe(node), percent, value, maximum)

    def _describe(self, node: str) -> str:
        spec = self._workflow.get(node)
        if not isinstance(spec, Mapping):
            return f"node {node}"
        class_type = spec.get("class_type", "?")
        title = (spec.get("_meta") or {}).get("title")
        named = f", '{title}'" if title and title != class_type else ""
        return f"node {node} ({class_type}{named})"


class Connection:
    """One websocket to ComfyUI for a client id, read in short slices; reopened after a drop."""

    def __init__(self, url: str, *, connect_timeout: float = 10.0) -> None:
        self.url = url
        self.connect_timeout = connect_timeout
        self._socket: websocket.WebSocket | None = None

    @property
    def is_open(self) -> bool:
        return self._socket is not None

    def open(self) -> None:
        """Connect; raises `ComfyUIUnavailableError` when the server refuses or does not answer."""
        self.close()
        sock = websocket.WebSocket(skip_utf8_validation=True)
        try:
            sock.connect(
                self.url, timeout=self.connect_timeout, socket=_direct(self.url, self.connect_timeout)
            )
        except (OSError, websocket.WebSocketException) as exc:
            sock.close()
            raise ComfyUIUnavailableError(self.url, f"websocket: {exc}") from exc
        sock.settimeout(POLL_SECONDS)
        self._socket = sock

    def receive(self) -> str | bytes | None:
        """The next message, or None if none came within `POLL_SECONDS`.

        Raises `ConnectionError` when the socket dropped (it is then closed).
        """
        sock = self._socket  # once: `close()` from another thread may clear it meanwhile
        if sock is None:
            raise ConnectionError("websocket is not open")
        try:
            opcode, data = sock.recv_data()
        except websocket.WebSocketTimeoutException:
            return None
        except (OSError, websocket.WebSocketException) as exc:
            self.close()
            raise ConnectionError(f"websocket dropped: {exc}") from exc
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            self.close()
            raise ConnectionError("websocket closed by ComfyUI")
        if opcode == websocket.ABNF.OPCODE_TEXT:
            return data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
        return bytes(data)

    def close(self) -> None:
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close(timeout=0.1)


def _direct(url: str, timeout: float) -> socket.socket:
    """A connection (TLS for wss) to the websocket's own host: websocket-client would otherwise go through
    `HTTP_PROXY`, which cannot reach this machine's ComfyUI, and it has no option that ignores it."""
    parts = urllib.parse.urlsplit(url)
    secure = parts.scheme == "wss"
    raw = socket.create_connection((parts.hostname, parts.port or (443 if secure else 80)), timeout=timeout)
    if not secure:
        return raw
    try:
        return ssl.create_default_context().wrap_socket(raw, server_hostname=parts.hostname)
    except BaseException:
        raw.close()
        raise


def follow(
    follower: PromptFollower,
    connection: Connection,
    http: ComfyHTTP,
    *,
    deadline: float | None,
    timeout: float | None,
    check_alive: Callable[[], None],
) -> tuple[PromptOutcome, dict[str, Any]]:
    """Read messages until the prompt ends; its outcome and history entry.

    Raises `RunTimeoutError` past `deadline`, whatever `check_alive` raises when ComfyUI died,
    `ComfyUIUnavailableError` when the websocket cannot be reopened.
    """
    prompt_id = follower.prompt_id
    while not follower.finished:
        if deadline is not None and time.monotonic() > deadline:
            raise RunTimeoutError(prompt_id=prompt_id, timeout=timeout or 0.0, node=follower.current_node)
        try:
            message = connection.receive()
        except ConnectionError as exc:
            check_alive()
            logger.warning("%s; reconnecting", exc)
            if not _reconnect(connection, deadline=deadline, check_alive=check_alive):
                continue  # the deadline passed first
            entry = http.history(prompt_id)
            if entry is not None:
                logger.info("prompt %s finished while the websocket was down", prompt_id)
                return outcome_from_history(entry), entry
            continue
        if message is None:
            check_alive()
        elif isinstance(message, bytes):
            follower.on_binary(message)
        else:
            try:
                parsed = json.loads(message)
            except ValueError:
                logger.debug("ignoring a websocket message that is not JSON: %.200s", message)
                continue
            if isinstance(parsed, dict):
                follower.on_text(parsed)
    entry = http.history(prompt_id)
    if entry is None:
        raise ComfyRunError(
            f"ComfyUI finished prompt {prompt_id} but has no history for it (was its history cleared?)"
        )
    return outcome_from_history(entry), entry


def _reconnect(
    connection: Connection,
    *,
    deadline: float | None,
    check_alive: Callable[[], None],
) -> bool:
    """Reopen the websocket; False if `deadline` passed first. Raises `ComfyUIUnavailableError` when
    the server stays unreachable for `RECONNECT_WINDOW` seconds."""
    give_up = time.monotonic() + RECONNECT_WINDOW
    pause = 0.05
    while True:
        try:
            connection.open()
            return True
        except ComfyUIUnavailableError:
            check_alive()
            if time.monotonic() + pause > give_up:
                raise
        if deadline is not None and time.monotonic() + pause > deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.5)
