"""A replay server: answers like the real ComfyUI recorded in `tests/reference/comfyui/`, over real sockets.

Each `POST /prompt` takes the next queued `Script`: it answers with the recorded status and body, then
plays the recorded websocket messages (text, and binary previews rebuilt from their recorded shape) to the
client that posted, and serves the recorded `/history` entry once the prompt has "finished". Scripts can
misbehave on purpose: drop the websocket before message N and lose some messages while the client is away,
or hold before message N until the client interrupts (then the prompt ends `execution_interrupted`, as
ComfyUI's does). Every request is recorded for the tests to inspect.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import socket
import struct
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

REFERENCE = Path(__file__).resolve().parent / "reference" / "comfyui"

Frame = tuple[str, Any]  # ("text", message dict) or ("binary", bytes)


@dataclass(frozen=True)
class ReplayCase:
    """One recorded case: what `POST /prompt` answered, what the websocket said, what history held."""

    name: str
    status: int
    body: Any
    prompt_id: str | None
    frames: tuple[Frame, ...] = ()
    history: dict[str, Any] | None = None
    files: dict[tuple[str, str, str], bytes] = field(default_factory=dict)

    @property
    def workflow(self) -> dict[str, Any]:
        path = REFERENCE / f"workflow_{self.name}.json"
        return json.loads(path.read_text()) if path.exists() else {"1": {"class_type": "X", "inputs": {}}}


def _binary(record: dict[str, Any]) -> bytes:
    """A preview frame with the recorded layout: type 1 (format + image) or 4 (metadata + image)."""
    image = bytes.fromhex(record["image_magic_hex"])
    if record["event_type"] == 4:
        metadata = json.dumps(record["metadata"]).encode()
        image += bytes(max(0, record.get("image_bytes", 0) - len(image)))
        return struct.pack(">II", 4, len(metadata)) + metadata + image
    image += bytes(max(0, record["length"] - 8 - len(image)))
    return struct.pack(">II", record["event_type"], 2 if record.get("image_format") == "PNG" else 1) + image


def load_case(name: str) -> ReplayCase:
    trace = REFERENCE / f"trace_{name}.jsonl"
    if not trace.exists():  # recorded as an HTTP error only
        error = json.loads((REFERENCE / f"error_{name}.json").read_text())
        return ReplayCase(name=name, status=error["status"], body=error["body"], prompt_id=None)
    records = [json.loads(line) for line in trace.read_text().splitlines() if line.strip()]
    post = next(r for r in records if r["dir"] == "http")
    frames: list[Frame] = []
    for record in records:
        if record["dir"] != "in" or "sid" in (record.get("msg", {}).get("data") or {}):
            continue  # the connect-time status is sent by the server on every connect
        if record["kind"] == "binary":
            frames.append(("binary", _binary(record)))
        elif record.get("msg", {}).get("type") != "feature_flags":
            frames.append(("text", record["msg"]))
    prompt_id = post["body"].get("prompt_id") if post["status"] == 200 else None
    history_file = REFERENCE / f"history_{name}.json"
    history = json.loads(history_file.read_text()) if history_file.exists() and prompt_id else None
    files = {}
    summary_file = REFERENCE / f"summary_{name}.json"
    if summary_file.exists():
        for out in json.loads(summary_file.read_text())["outputs"]:
            content = bytes.fromhex(out["magic_hex"]) + bytes(out["bytes"] - len(out["magic_hex"]) // 2)
            files[(out["filename"], out["subfolder"], out["type"])] = content
    return ReplayCase(
        name=name,
        status=post["status"],
        body=post["body"],
        prompt_id=prompt_id,
        frames=tuple(frames),
        history=history.get(prompt_id) if history else None,
        files=files,
    )


def recorded_cases() -> list[str]:
    traces = {p.name[len("trace_") : -len(".jsonl")] for p in REFERENCE.glob("trace_*.jsonl")}
    errors = {p.name[len("error_") : -len(".json")] for p in REFERENCE.glob("error_*.json")}
    return sorted(traces | errors)


@dataclass
class Script:
    """How to play one case: `drop_before` closes the client's socket abruptly before that frame and
    `lose` frames then go unsent; `hold_before` stops before that frame until `/interrupt` arrives."""

    case: ReplayCase
    drop_before: int | None = None
    lose: int = 0
    hold_before: int | None = None
    held: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: Any


class ReplayServer:
    """The replay server on 127.0.0.1 and a free port, run by its own event loop in a thread."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._scripts: collections.deque[Script] = collections.deque()
        self._history: dict[str, dict[str, Any]] = {}
        self._files: dict[tuple[str, str, str], bytes] = {}
        self._sockets: dict[str, tuple[web.WebSocketResponse, web.Request]] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="replay", daemon=True)
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        """Forget the requests and scripts of earlier tests, and stop playing them."""
        self.requests.clear()
        self._scripts.clear()
        asyncio.run_coroutine_threadsafe(self._cancel_players(), self._loop).result(timeout=10)

    async def _cancel_players(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def play(self, case: ReplayCase, **misbehaviour: Any) -> Script:
        script = Script(case, **misbehaviour)
        self._scripts.append(script)
        return script

    def posted(self, path: str) -> list[Any]:
        return [r.body for r in self.requests if r.method == "POST" and r.path == path]

    def start(self) -> ReplayServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._cancel_players(), self._loop).result(timeout=10)
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _serve(self) -> None:
        self._ws_changed = asyncio.Condition()
        self._interrupted = asyncio.Event()
        app = web.Application()
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/system_stats", self._system_stats)
        app.router.add_post("/prompt", self._prompt)
        app.router.add_get("/history/{prompt_id}", self._history_of)
        app.router.add_get("/view", self._view)
        for route in ("/interrupt", "/queue", "/free"):
            app.router.add_post(route, self._record)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        self.requests.append(Request(request.method, request.path, body))
        return body

    async def _system_stats(self, request: web.Request) -> web.Response:
        return web.json_response(json.loads((REFERENCE / "system_stats.json").read_text()))

    async def _record(self, request: web.Request) -> web.Response:
        await self._body(request)
        if request.path == "/interrupt":
            self._interrupted.set()
        return web.Response(status=200)

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        client_id = request.query.get("clientId", "")
        async with self._ws_changed:
            self._sockets[client_id] = (ws, request)
            self._ws_changed.notify_all()
        await ws.send_json(
            {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": client_id}}
        )
        async for message in ws:
            if message.type == WSMsgType.ERROR:
                break
        async with self._ws_changed:
            if self._sockets.get(client_id, (None,))[0] is ws:
                del self._sockets[client_id]
        return ws

    async def _prompt(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        script = self._scripts.popleft()
        case = script.case
        if case.status != 200:
            if isinstance(case.body, str):
                return web.Response(status=case.status, text=case.body)
            return web.json_response(case.body, status=case.status)
        if body.get("prompt_id"):  # ComfyUI runs a prompt under the id its client chose
            case = _renamed(case, str(body["prompt_id"]))
            script.case = case
        self._files.update(case.files)
        self._interrupted.clear()
        self._tasks.add(
            asyncio.get_running_loop().create_task(self._play(script, str(body.get("client_id", ""))))
        )
        return web.json_response(case.body)

    async def _socket_of(self, client_id: str) -> web.WebSocketResponse:
        async with self._ws_changed:
            await self._ws_changed.wait_for(lambda: client_id in self._sockets)
            return self._sockets[client_id][0]

    async def _play(self, script: Script, client_id: str) -> None:
        case = script.case
        frames = list(case.frames)
        index = 0
        while index < len(frames):
            if index == script.drop_before:
                old, request = self._sockets[client_id]
                assert request.transport is not None
                request.transport.abort()
                if index + script.lose >= len(frames):  # it finishes while the client is away
                    self._history[str(case.prompt_id)] = case.history or {}
                index += script.lose
                await self._reconnected(client_id, old, frames[:index])
                if index >= len(frames):
                    break
            if index == script.hold_before:
                script.held.set()
                await self._interrupted.wait()
                await self._end_interrupted(case, client_id)
                script.finished.set()
                return
            kind, payload = frames[index]
            if _ends(kind, payload, case.prompt_id):
                self._history[str(case.prompt_id)] = case.history or {}
            ws = await self._socket_of(client_id)
            await (ws.send_bytes(payload) if kind == "binary" else ws.send_json(payload))
            index += 1
        self._history[str(case.prompt_id)] = case.history or {}
        script.finished.set()

    async def _reconnected(self, client_id: str, old: web.WebSocketResponse, sent: list[Frame]) -> None:
        """Wait for the client's new socket; say which node runs, as ComfyUI does on reconnect."""
        async with self._ws_changed:
            await self._ws_changed.wait_for(lambda: self._sockets.get(client_id, (old,))[0] is not old)
        ws = self._sockets[client_id][0]
        running = [p["data"]["node"] for k, p in sent if k == "text" and p.get("type") == "executing"]
        if running and running[-1] is not None:
            await ws.send_json({"type": "executing", "data": {"node": running[-1]}})

    async def _end_interrupted(self, case: ReplayCase, client_id: str) -> None:
        prompt_id = str(case.prompt_id)
        data = {"prompt_id": prompt_id, "node_id": "1", "node_type": "X", "executed": [], "timestamp": 0}
        self._history[prompt_id] = {
            "outputs": {},
            "status": {
                "status_str": "error",
                "completed": False,
                "messages": [["execution_interrupted", data]],
            },
        }
        if client_id in self._sockets:  # ComfyUI drops messages for a client that is gone
            ws = self._sockets[client_id][0]
            with contextlib.suppress(ConnectionError):
                await ws.send_json({"type": "execution_interrupted", "data": data})
                await ws.send_json({"type": "executing", "data": {"node": None, "prompt_id": prompt_id}})

    async def _history_of(self, request: web.Request) -> web.Response:
        prompt_id = request.match_info["prompt_id"]
        entry = self._history.get(prompt_id)
        return web.json_response({prompt_id: entry} if entry is not None else {})

    async def _view(self, request: web.Request) -> web.Response:
        key = (
            request.query.get("filename", ""),
            request.query.get("subfolder", ""),
            request.query.get("type", ""),
        )
        content = self._files.get(key)
        return web.Response(body=content) if content is not None else web.Response(status=404)


def _renamed(case: ReplayCase, prompt_id: str) -> ReplayCase:
    """`case` as if it had run under `prompt_id`."""
    old = str(case.prompt_id)

    def swap(value: Any) -> Any:
        return json.loads(json.dumps(value).replace(json.dumps(old), json.dumps(prompt_id)))

    frames: list[Frame] = []
    for kind, payload in case.frames:
        if kind == "binary" and payload[:4] == struct.pack(">I", 4):
            (size,) = struct.unpack(">I", payload[4:8])
            metadata = json.dumps(swap(json.loads(payload[8 : 8 + size]))).encode()
            payload = struct.pack(">II", 4, len(metadata)) + metadata + payload[8 + size :]
        frames.append((kind, payload if kind == "binary" else swap(payload)))
    return replace(
        case, prompt_id=prompt_id, body=swap(case.body), frames=tuple(frames), history=swap(case.history)
    )


def _ends(kind: str, payload: Any, prompt_id: str | None) -> bool:
    """ComfyUI writes history just before it sends `executing` with node null."""
    return (
        kind == "text"
        and payload.get("type") == "executing"
        and payload["data"].get("node") is None
        and payload["data"].get("prompt_id") == prompt_id
    )
