"""The server: websocket clients, the message pump, and the worker thread that runs queued prompts.

As in ComfyUI, the worker thread hands each message to the event loop (`send_sync`), and one loop
task sends them in order, to one client (`sid`) or to all (`sid=None`). A client connecting to
`/ws?clientId=ID` first gets `status` with its `sid`; one that says `feature_flags` first gets the
server's flags back and its previews as type-4 frames with metadata instead of type-1 frames.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import struct
import threading
import time
import uuid
from io import BytesIO
from typing import Any

from aiohttp import ClientError, WSMsgType, web
from PIL import Image, ImageOps

from .catalog import Catalog
from .execution import Interrupt, PromptExecutor
from .folders import Folders
from .node_api import Preview
from .nodes import NodeLibrary
from .progress import PREVIEW_IMAGE, PREVIEW_IMAGE_WITH_METADATA, UNENCODED_PREVIEW_IMAGE
from .prompt_queue import PromptQueue
from .settings import StandinSettings

log = logging.getLogger(__name__)


class PromptServer:
    """State shared by the routes, the websocket clients and the worker (ComfyUI's server.PromptServer)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        args: argparse.Namespace,
        settings: StandinSettings,
        folders: Folders,
        catalog: Catalog,
    ) -> None:
        self.loop = loop
        self.args = args
        self.folders = folders
        self.catalog = catalog
        self.library = NodeLibrary(catalog)
        self.messages: asyncio.Queue[tuple[Any, Any, str | None]] = asyncio.Queue()
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.sockets_metadata: dict[str, dict[str, Any]] = {}
        self.number = 0
        self.client_id: str | None = None
        self.last_node_id: str | None = None
        self.last_prompt_id: str | None = None
        self.gc_delay = settings.gc_delay
        self.interrupt = Interrupt()
        self.prompt_queue = PromptQueue(self.queue_updated)
        self.executor = PromptExecutor(
            self,
            catalog=catalog,
            library=self.library,
            folders=folders,
            interrupt=self.interrupt,
            step_delay=settings.step_delay,
            disable_metadata=args.disable_metadata,
            keep_cache=not args.cache_none,
        )

    # -- features ------------------------------------------------------------------------------------

    def server_features(self) -> dict[str, Any]:
        return {"supports_preview_metadata": True, "max_upload_size": self.args.max_upload_size * 1024 * 1024}

    def supports_preview_metadata(self, sid: str | None) -> bool:
        if sid not in self.sockets_metadata:
            return False
        return (
            self.sockets_metadata[sid].get("feature_flags", {}).get("supports_preview_metadata", False)
            is True
        )

    def queue_info(self) -> dict[str, Any]:
        return {"exec_info": {"queue_remaining": self.prompt_queue.tasks_remaining()}}

    # -- sending -------------------------------------------------------------------------------------

    def send_sync(self, event: Any, data: Any, sid: str | None = None) -> None:
        """Queue a message from any thread; the event loop sends it after every message queued before."""
        self.loop.call_soon_threadsafe(self.messages.put_nowait, (event, data, sid))

    def queue_updated(self) -> None:
        self.send_sync("status", {"status": self.queue_info()})

    async def publish_loop(self) -> None:
        while True:
            await self.send(*await self.messages.get())

    async def send(self, event: Any, data: Any, sid: str | None = None) -> None:
        if event == UNENCODED_PREVIEW_IMAGE:
            await self._send_bytes(PREVIEW_IMAGE, _legacy_preview(data), sid)
        elif event == PREVIEW_IMAGE_WITH_METADATA:
            await self._send_bytes(PREVIEW_IMAGE_WITH_METADATA, _preview_with_metadata(*data), sid)
        elif isinstance(data, (bytes, bytearray)):
            await self._send_bytes(event, data, sid)
        else:
            await self._deliver("send_json", {"type": event, "data": data}, sid)

    async def _send_bytes(self, event: int, data: bytes | bytearray, sid: str | None) -> None:
        await self._deliver("send_bytes", struct.pack(">I", event) + bytes(data), sid)

    async def _deliver(self, method: str, message: Any, sid: str | None) -> None:
        targets = (
            list(self.sockets.values()) if sid is None else [self.sockets[sid]] if sid in self.sockets else []
        )
        for ws in targets:
            try:
                await getattr(ws, method)(message)
            except (ClientError, ConnectionError) as err:
                log.warning("send error: %s", err)

    # -- websocket -----------------------------------------------------------------------------------

    async def websocket_handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sid = request.rel_url.query.get("clientId", "")
        if sid:
            self.sockets.pop(sid, None)
        else:
            sid = uuid.uuid4().hex
        self.sockets[sid] = ws
        self.sockets_metadata[sid] = {"feature_flags": {}}
        try:
            await self.send("status", {"status": self.queue_info(), "sid": sid}, sid)
            if self.client_id == sid and self.last_node_id is not None:
                await self.send("executing", {"node": self.last_node_id}, sid)
            first = True
            async for msg in ws:
                if msg.type == WSMsgType.ERROR:
                    log.warning("ws connection closed with exception %s", ws.exception())
                elif msg.type == WSMsgType.TEXT:
                    try:
                        data = json.loads(msg.data)
                        if first and data.get("type") == "feature_flags":
                            self.sockets_metadata[sid]["feature_flags"] = data.get("data", {})
                            await self.send("feature_flags", self.server_features(), sid)
                        first = False
                    except json.JSONDecodeError:
                        log.warning("Invalid JSON received from client %s: %s", sid, msg.data)
                    except Exception as e:
                        log.error("Error processing WebSocket message: %s", e)
        finally:
            # Unconditional, as in ComfyUI: if a client reconnected with the same clientId before its old
            # connection ended, the new connection is dropped from `sockets` too and gets no messages.
            self.sockets.pop(sid, None)
            self.sockets_metadata.pop(sid, None)
        return ws

    # -- the worker ----------------------------------------------------------------------------------

    def start_worker(self) -> threading.Thread:
        thread = threading.Thread(target=self._worker, name="prompt_worker", daemon=True)
        thread.start()
        return thread

    def _worker(self) -> None:
        while True:
            queued = self.prompt_queue.get(timeout=1000.0)
            if queued is not None:
                (_, prompt_id, prompt, extra_data, outputs), task_id = queued
                self.last_prompt_id = prompt_id
                started = time.perf_counter()
                try:
                    self.executor.execute(prompt, prompt_id, extra_data, outputs)
                except Exception:  # a bug of the stand-in, not a node failure: keep serving, mark it failed
                    log.exception("The stand-in failed to run prompt %s", prompt_id)
                    self.executor.success = False
                status = {
                    "status_str": "success" if self.executor.success else "error",
                    "completed": self.executor.success,
                    "messages": self.executor.status_messages,
                }
                self.prompt_queue.task_done(task_id, self.executor.history_result, status)
                if self.client_id is not None:
                    self.send_sync("executing", {"node": None, "prompt_id": prompt_id}, self.client_id)
                log.info("Prompt executed in %.2f seconds", time.perf_counter() - started)
            # `unload_models` has nothing to unload here; `free_memory` also drops every cached output.
            flags = self.prompt_queue.take_flags()
            if flags.get("free_memory", False):
                self.executor.reset()
            if queued is not None:
                time.sleep(self.gc_delay)  # ComfyUI's gc.collect() and soft_empty_cache() after a prompt


def _encode(image: Image.Image, image_format: str, max_size: int | None) -> bytes:
    if max_size is not None:
        image = ImageOps.contain(image, (max_size, max_size), Image.Resampling.BILINEAR)
    buffer = BytesIO()
    image.save(buffer, format=image_format, quality=95, compress_level=1)
    return buffer.getvalue()


def _legacy_preview(preview: Preview) -> bytes:
    """Type-1 frame body: image type (1 JPEG, 2 PNG), then the image."""
    image_format, image, max_size = preview
    type_number = 2 if image_format == "PNG" else 1
    return struct.pack(">I", type_number) + _encode(image, image_format, max_size)


def _preview_with_metadata(preview: Preview, metadata: dict[str, Any]) -> bytes:
    """Type-4 frame body: metadata length, metadata JSON (with `image_type`), then the image."""
    image_format, image, max_size = preview
    metadata = {**metadata, "image_type": "image/png" if image_format == "PNG" else "image/jpeg"}
    encoded = json.dumps(metadata).encode("utf-8")
    return struct.pack(">I", len(encoded)) + encoded + _encode(image, image_format, max_size)
