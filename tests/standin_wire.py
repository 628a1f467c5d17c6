"""A minimal ComfyUI client for tests that talk to a server directly: HTTP with urllib, websockets with
websocket-client. It hides nothing (status, headers and raw body of every answer), so tests can hold
every byte against the recordings.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

import websocket

TIMEOUT = 20.0


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str | None
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _open(request: urllib.request.Request) -> Answer:
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return Answer(
                response.status,
                response.headers.get_content_type() if response.headers.get("Content-Type") else None,
                response.read(),
            )
    except urllib.error.HTTPError as error:
        with error:
            content_type = error.headers.get("Content-Type")
            return Answer(
                error.code, error.headers.get_content_type() if content_type else None, error.read()
            )


def get(base_url: str, path: str) -> Answer:
    return _open(urllib.request.Request(base_url + path))


def post(base_url: str, path: str, body: Any = None, *, raw: bytes | None = None) -> Answer:
    """POST `body` as JSON (or `raw` bytes as they are)."""
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    request = urllib.request.Request(base_url + path, data=data, method="POST")
    request.add_header("Content-Type", "application/json")
    return _open(request)


def upload(base_url: str, filename: str | None, content: bytes, **fields: str) -> Answer:
    """POST /upload/image as a browser would (multipart); `filename=None` sends no file part."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    if filename is not None:
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n'
        parts.append(head.encode() + b"Content-Type: image/png\r\n\r\n" + content + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    request = urllib.request.Request(base_url + "/upload/image", data=body, method="POST")
    request.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
    return _open(request)


@dataclass(frozen=True)
class Frame:
    """One websocket message: `kind` is "text" (with `msg` parsed) or "binary" (with `data`)."""

    kind: str
    msg: dict[str, Any] | None = None
    data: bytes = b""

    @property
    def type(self) -> str:
        if self.msg is not None:
            return self.msg["type"]
        return f"binary:{int.from_bytes(self.data[:4], 'big')}"


class Socket:
    """`/ws?clientId=...`; every receive has a timeout, so a test never hangs on a silent server."""

    def __init__(self, ws_url: str) -> None:
        self._ws = websocket.create_connection(ws_url, timeout=TIMEOUT)

    def send_json(self, message: Any) -> None:
        self._ws.send(json.dumps(message))

    def receive(self, timeout: float = TIMEOUT) -> Frame:
        self._ws.settimeout(timeout)
        opcode, data = self._ws.recv_data()
        if opcode == websocket.ABNF.OPCODE_TEXT:
            return Frame("text", msg=json.loads(data))
        return Frame("binary", data=bytes(data))

    def until_done(self, prompt_id: str, timeout: float = TIMEOUT) -> list[Frame]:
        """Frames up to and including `executing` with `node: null` for `prompt_id`."""
        frames = []
        while True:
            frame = self.receive(timeout)
            frames.append(frame)
            msg = frame.msg or {}
            data = msg.get("data") or {}
            if (
                msg.get("type") == "executing"
                and data.get("node") is None
                and data.get("prompt_id") == prompt_id
            ):
                return frames

    def close(self) -> None:
        self._ws.close()

    def __enter__(self) -> Socket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
