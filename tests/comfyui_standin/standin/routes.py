"""ComfyUI's HTTP API on the stand-in: same paths (each also under `/api`), same status codes, same bodies.

A body that is not JSON where JSON is expected raises, and aiohttp answers 500 `text/plain`
("500 Internal Server Error\\n\\nServer got itself in trouble"), as ComfyUI does.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import struct
import sys
import urllib.parse
import uuid
from typing import Any

from aiohttp import web

from .catalog import REFERENCE_DIR
from .files import upload_image, view
from .server import PromptServer
from .validation import validate_prompt

log = logging.getLogger(__name__)

COMFYUI_VERSION = "0.3.64"
_FRONTEND = {
    "required_frontend_version": "1.27.10",
    "installed_templates_version": "0.1.95",
    "required_templates_version": "0.1.95",
}
_INDEX_HTML = (
    "<!doctype html><title>ComfyUI stand-in</title><p>ComfyUI stand-in: the API only, no front end.</p>"
)


def build_app(server: PromptServer) -> web.Application:
    """The aiohttp application with every route; the routes are also served under `/api`."""
    app = web.Application(client_max_size=round(server.args.max_upload_size * 1024 * 1024))
    routes = web.RouteTableDef()
    routes.get("/ws")(server.websocket_handler)
    _add_listing_routes(routes, server)
    _add_file_routes(routes, server)
    _add_system_routes(routes, server)
    _add_queue_reading_routes(routes, server)
    _add_queue_writing_routes(routes, server)
    app.add_routes(
        [web.route(r.method, "/api" + r.path, r.handler) for r in routes if isinstance(r, web.RouteDef)]
    )
    app.add_routes(routes)
    app.add_subapp("/internal", _internal_app(server))
    return app


def _add_listing_routes(routes: web.RouteTableDef, server: PromptServer) -> None:
    """The front page and what is installed: embeddings, model folders and their files, extensions."""
    folders = server.folders

    @routes.get("/")
    async def index(request: web.Request) -> web.Response:
        return web.Response(text=_INDEX_HTML, content_type="text/html", headers={"Cache-Control": "no-cache"})

    @routes.get("/embeddings")
    async def embeddings(request: web.Request) -> web.Response:
        return web.json_response([os.path.splitext(n)[0] for n in folders.filename_list("embeddings")])

    @routes.get("/models")
    async def model_types(request: web.Request) -> web.Response:
        return web.json_response(folders.names())

    @routes.get("/models/{folder}")
    async def models(request: web.Request) -> web.Response:
        folder = request.match_info["folder"]
        if not folders.has(folder):
            return web.Response(status=404)
        return web.json_response(folders.filename_list(folder))

    @routes.get("/extensions")
    async def extensions(request: web.Request) -> web.Response:
        found = json.loads((REFERENCE_DIR / "extensions.json").read_text())
        for name, directory in server.catalog.custom.web_dirs.items():
            for path in sorted(glob.glob(os.path.join(glob.escape(directory), "**/*.js"), recursive=True)):
                relative = os.path.relpath(path, directory).replace(os.sep, "/")
                found.append(f"/extensions/{urllib.parse.quote(name)}/{relative}")
        return web.json_response(found)


def _add_file_routes(routes: web.RouteTableDef, server: PromptServer) -> None:
    """Uploads, downloads (`/view`) and a safetensors file's metadata."""
    folders = server.folders

    @routes.post("/upload/image")
    async def upload(request: web.Request) -> web.Response:
        return upload_image(await request.post(), folders, server.args.default_hashing_function)

    @routes.get("/view")
    async def view_file(request: web.Request) -> web.StreamResponse:
        return view(request.rel_url.query, folders)

    @routes.get("/view_metadata/{folder_name}")
    async def view_metadata(request: web.Request) -> web.Response:
        filename = request.rel_url.query.get("filename")
        if filename is None or not filename.endswith(".safetensors"):
            return web.Response(status=404)
        path = folders.full_path(request.match_info["folder_name"], filename)
        if path is None:
            return web.Response(status=404)
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > 1024 * 1024:
                return web.Response(status=404)
            header = json.loads(f.read(length))
        if "__metadata__" not in header:
            return web.Response(status=404)
        return web.json_response(header["__metadata__"])


def _add_system_routes(routes: web.RouteTableDef, server: PromptServer) -> None:
    """What the server is: its system, its features, its queue's size and its node classes."""

    @routes.get("/system_stats")
    async def system_stats(request: web.Request) -> web.Response:
        return web.json_response(_system_stats())

    @routes.get("/features")
    async def features(request: web.Request) -> web.Response:
        return web.json_response(server.server_features())

    @routes.get("/prompt")
    async def get_prompt(request: web.Request) -> web.Response:
        return web.json_response(server.queue_info())

    @routes.get("/object_info")
    async def object_info(request: web.Request) -> web.Response:
        catalog = server.catalog
        return web.json_response({name: catalog.node_info(name) for name in catalog.class_types()})

    @routes.get("/object_info/{node_class}")
    async def object_info_node(request: web.Request) -> web.Response:
        name = request.match_info["node_class"]
        return web.json_response({name: server.catalog.node_info(name)} if name in server.catalog else {})


def _add_queue_reading_routes(routes: web.RouteTableDef, server: PromptServer) -> None:
    """The history (all, the last `max_items`, or one prompt) and the queue."""
    queue = server.prompt_queue

    @routes.get("/history")
    async def history(request: web.Request) -> web.Response:
        query = request.rel_url.query
        max_items = int(query["max_items"]) if "max_items" in query else None
        offset = int(query["offset"]) if "offset" in query else -1
        return web.json_response(queue.history(max_items=max_items, offset=offset))

    @routes.get("/history/{prompt_id}")
    async def history_entry(request: web.Request) -> web.Response:
        return web.json_response(queue.history(prompt_id=request.match_info["prompt_id"]))

    @routes.get("/queue")
    async def get_queue(request: web.Request) -> web.Response:
        running, pending = queue.current()
        return web.json_response({"queue_running": running, "queue_pending": pending})


def _add_queue_writing_routes(routes: web.RouteTableDef, server: PromptServer) -> None:
    """Queueing a prompt, editing the queue and the history, interrupting, and `/free`."""
    queue = server.prompt_queue

    @routes.post("/prompt")
    async def post_prompt(request: web.Request) -> web.Response:
        log.info("got prompt")
        return _queue_prompt(server, await request.json())

    @routes.post("/queue")
    async def post_queue(request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("clear"):
            queue.wipe_queue()
        for prompt_id in body.get("delete", []):
            queue.delete_queue_item(lambda item, wanted=prompt_id: item[1] == wanted)
        return web.Response(status=200)

    @routes.post("/interrupt")
    async def post_interrupt(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            body = {}
        prompt_id = body.get("prompt_id")
        if not prompt_id:
            log.info("Global interrupt (no prompt_id specified)")
            server.interrupt.request()
        elif any(item[1] == prompt_id for item in queue.current()[0]):
            log.info("Interrupting prompt %s", prompt_id)
            server.interrupt.request()
        else:
            log.info("Prompt %s is not currently running, skipping interrupt", prompt_id)
        return web.Response(status=200)

    @routes.post("/free")
    async def post_free(request: web.Request) -> web.Response:
        body = await request.json()
        for flag in ("unload_models", "free_memory"):
            if body.get(flag, False):
                queue.set_flag(flag, body[flag])
        return web.Response(status=200)

    @routes.post("/history")
    async def post_history(request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("clear"):
            queue.wipe_history()
        for prompt_id in body.get("delete", []):
            queue.delete_history_item(prompt_id)
        return web.Response(status=200)


def _queue_prompt(server: PromptServer, body: dict[str, Any]) -> web.Response:
    """`POST /prompt`: number it (a prompt sent with `front` goes first), validate it, queue it."""
    if "number" in body:
        number: Any = float(body["number"])
    else:
        number = server.number
        if body.get("front"):
            number = -number
        server.number += 1
    if "prompt" not in body:
        error = {
            "type": "no_prompt",
            "message": "No prompt provided",
            "details": "No prompt provided",
            "extra_info": {},
        }
        return web.json_response({"error": error, "node_errors": {}}, status=400)
    prompt = body["prompt"]
    prompt_id = str(body.get("prompt_id", uuid.uuid4()))
    targets = body.get("partial_execution_targets")
    result = validate_prompt(prompt, server.catalog, server.library, server.folders, targets)
    extra_data = body.get("extra_data", {})
    if "client_id" in body:
        extra_data["client_id"] = body["client_id"]
    if not result.ok:
        log.warning("invalid prompt: %s", result.error)
        return web.json_response({"error": result.error, "node_errors": result.node_errors}, status=400)
    server.prompt_queue.put((number, prompt_id, prompt, extra_data, result.good_outputs))
    return web.json_response({"prompt_id": prompt_id, "number": number, "node_errors": result.node_errors})


def _internal_app(server: PromptServer) -> web.Application:
    """`/internal/folder_paths` and `/internal/files/{type}` (ComfyUI's front-end helpers)."""
    routes = web.RouteTableDef()
    folders = server.folders

    @routes.get("/folder_paths")
    async def folder_paths(request: web.Request) -> web.Response:
        return web.json_response({name: folders.paths(name) for name in folders.names()})

    @routes.get("/files/{directory_type}")
    async def files(request: web.Request) -> web.Response:
        kind = request.match_info["directory_type"]
        if kind not in ("output", "input", "temp"):
            return web.json_response({"error": "Invalid directory type"}, status=400)
        entries = [e for e in os.scandir(folders.directory_by_type(kind)) if e.is_file()]
        entries.sort(key=lambda e: -e.stat().st_mtime)
        return web.json_response([e.name for e in entries])

    app = web.Application()
    app.add_routes(routes)
    return app


def _system_stats() -> dict[str, Any]:
    """`/system_stats` as ComfyUI answers it on a CPU-only machine."""
    total, free = _memory()
    system = {
        "os": os.name,
        "ram_total": total,
        "ram_free": free,
        "comfyui_version": COMFYUI_VERSION,
        **_FRONTEND,
        "python_version": sys.version,
        "pytorch_version": "none (ComfyUI stand-in)",
        "embedded_python": False,
        "argv": sys.argv,
    }
    device = {
        "name": "cpu",
        "type": "cpu",
        "index": None,
        "vram_total": total,
        "vram_free": free,
        "torch_vram_total": total,
        "torch_vram_free": free,
    }
    return {"system": system, "devices": [device]}


def _memory() -> tuple[int, int]:
    """Total and available RAM in bytes (what ComfyUI reports for a CPU device)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    free = total
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
    except OSError:
        pass
    return total, free
