"""What a running prompt tells its client as it goes: per-node `progress_state`, and preview frames.

The executor talks to the server through `Outbox`; binary frames carry ComfyUI's event types.
"""

from __future__ import annotations

from typing import Any, Protocol

from .node_api import Preview

# Binary websocket events (ComfyUI's protocol.BinaryEventTypes)
PREVIEW_IMAGE = 1
UNENCODED_PREVIEW_IMAGE = 2
PREVIEW_IMAGE_WITH_METADATA = 4


class Outbox(Protocol):
    """The part of the server the executor talks to."""

    client_id: str | None
    last_node_id: str | None

    def send_sync(self, event: str | int, data: Any, sid: str | None) -> None: ...

    def supports_preview_metadata(self, sid: str | None) -> bool: ...


class Progress:
    """Per-node progress of the running prompt; every change sends the whole `progress_state`."""

    def __init__(self, outbox: Outbox, prompt_id: str) -> None:
        self._outbox = outbox
        self._prompt_id = prompt_id
        self._nodes: dict[str, dict[str, Any]] = {}

    def _entry(self, node_id: str) -> dict[str, Any]:
        return self._nodes.setdefault(node_id, {"state": "pending", "value": 0, "max": 1})

    def start(self, node_id: str) -> None:
        self._entry(node_id).update(state="running", value=0.0, max=1.0)
        self._send()

    def update(self, node_id: str, value: float, maximum: float, preview: Preview | None) -> None:
        self._entry(node_id).update(state="running", value=value, max=maximum)
        self._send()
        if preview is not None and self._outbox.supports_preview_metadata(self._outbox.client_id):
            metadata = {
                "node_id": node_id,
                "prompt_id": self._prompt_id,
                "display_node_id": node_id,
                "parent_node_id": None,
                "real_node_id": node_id,
            }
            self._outbox.send_sync(PREVIEW_IMAGE_WITH_METADATA, (preview, metadata), self._outbox.client_id)

    def finish(self, node_id: str) -> None:
        entry = self._entry(node_id)
        entry.update(state="finished", value=entry["max"])
        self._send()

    def _send(self) -> None:
        nodes = {
            node_id: {
                "value": entry["value"],
                "max": entry["max"],
                "state": entry["state"],
                "node_id": node_id,
                "prompt_id": self._prompt_id,
                "display_node_id": node_id,
                "parent_node_id": None,
                "real_node_id": node_id,
            }
            for node_id, entry in self._nodes.items()
            if entry["state"] != "pending"
        }
        self._outbox.send_sync(
            "progress_state", {"prompt_id": self._prompt_id, "nodes": nodes}, self._outbox.client_id
        )
