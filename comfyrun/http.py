"""ComfyUI's HTTP routes, one method each, with its answers turned into values or typed errors.

Stdlib `urllib` is enough here: the server is on loopback (or one known host), bodies are small JSON, and
output files are streamed to disk. A 400 from `POST /prompt` becomes `PromptRejectedError`; any other
unexpected status `ComfyUIHTTPError`; a refused or dropped connection `ComfyUIUnavailableError`. Proxy
variables (`HTTP_PROXY`, ...) are not used: they are meant for the internet, and a proxy would not reach
this machine's own ComfyUI (every call would fail as if ComfyUI were not answering).
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from comfyrun.errors import ComfyUIHTTPError, ComfyUIUnavailableError, PromptRejectedError

__all__ = ["ComfyHTTP"]

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy, whatever the environment


class ComfyHTTP:
    """The routes of one ComfyUI server at `base_url` (`http://127.0.0.1:8188`)."""

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def ws_url(self, client_id: str) -> str:
        scheme, rest = self.base_url.split("://", 1)
        ws_scheme = "wss" if scheme == "https" else "ws"
        return f"{ws_scheme}://{rest}/ws?clientId={urllib.parse.quote(client_id)}"

    def system_stats(self, *, timeout: float | None = None) -> dict[str, Any]:
        return self._json("GET", "/system_stats", timeout=timeout)

    def post_prompt(
        self,
        workflow: Mapping[str, Any],
        *,
        client_id: str,
        prompt_id: str | None = None,
    ) -> dict[str, Any]:
        """Queue `workflow`; `{"prompt_id", "number", "node_errors"}`. Raises `PromptRejectedError` on 400."""
        body: dict[str, Any] = {"prompt": workflow, "client_id": client_id}
        if prompt_id is not None:
            body["prompt_id"] = prompt_id
        return self._json("POST", "/prompt", body, rejected_on_400=True)

    def history(self, prompt_id: str) -> dict[str, Any] | None:
        """The finished prompt's history entry, or None while it is queued or running (or unknown)."""
        answer = self._json("GET", f"/history/{urllib.parse.quote(prompt_id, safe='')}")
        entry = answer.get(prompt_id) if isinstance(answer, dict) else None
        return entry if isinstance(entry, dict) else None

    def object_info(self) -> dict[str, Any]:
        """Every node class ComfyUI knows, with its inputs' types, ranges and options."""
        return self._json("GET", "/object_info")

    def interrupt(self, prompt_id: str | None = None) -> None:
        """Stop the running prompt at its next step; with `prompt_id`, only if that one is running."""
        self._json("POST", "/interrupt", {"prompt_id": prompt_id} if prompt_id else {})

    def delete_from_queue(self, prompt_ids: Iterable[str]) -> None:
        """Drop pending prompts; a running prompt is not affected (interrupt it)."""
        self._json("POST", "/queue", {"delete": list(prompt_ids)})

    def clear_queue(self) -> None:
        self._json("POST", "/queue", {"clear": True})

    def abandon(self, prompt_id: str) -> None:
        """Take `prompt_id` off the queue and interrupt it if it is running (either may be so)."""
        self.delete_from_queue([prompt_id])
        self.interrupt(prompt_id)

    def free(self, *, unload_models: bool = True, free_memory: bool = True) -> None:
        """Ask ComfyUI to drop loaded models and (with `free_memory`) its cached node outputs.

        ComfyUI acts on this between prompts, asynchronously. Only `free_memory` resets the executor's
        cache, which is what still holds a loader's old output after its file was replaced.
        """
        self._json("POST", "/free", {"unload_models": unload_models, "free_memory": free_memory})

    def download(self, *, filename: str, subfolder: str, type: str, destination: Path) -> Path:
        """Stream `/view` of one output file to `destination`, via a temporary file renamed into place.
        Raises `ComfyUIUnavailableError` when the transfer stalls (`timeout`) or breaks off."""
        query = urllib.parse.urlencode({"filename": filename, "subfolder": subfolder, "type": type})
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(f".{destination.name}.{os.getpid()}.partial")
        try:
            with self._open("GET", f"/view?{query}") as response, open(partial, "wb") as handle:
                while chunk := self._read(response, f"GET /view of {filename}"):
                    handle.write(chunk)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        os.replace(partial, destination)
        return destination

    def _read(self, response: Any, what: str) -> bytes:
        """The next piece of `response`; a stall or a dropped connection as `ComfyUIUnavailableError`."""
        try:
            return response.read(1 << 20)
        except (OSError, http.client.HTTPException) as exc:
            raise ComfyUIUnavailableError(self.base_url, f"{what} broke off ({exc!r})") from exc

    def upload_input(self, path: Path, *, subfolder: str = "") -> dict[str, Any]:
        """Put a file into ComfyUI's input folder (`subfolder` inside it), replacing one of the same name,
        through `POST /upload/image` (which takes any file); ComfyUI's `{name, subfolder, type}`."""
        boundary = uuid.uuid4().hex
        fields = {"subfolder": subfolder, "type": "input", "overwrite": "true"}
        body = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
            for key, value in fields.items()
        )
        body += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{path.name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        body += path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
        content_type = f"multipart/form-data; boundary={boundary}"
        with self._open("POST", "/upload/image", body, content_type=content_type) as response:
            return json.loads(response.read())

    def _json(
        self,
        method: str,
        route: str,
        body: Any = None,
        *,
        rejected_on_400: bool = False,
        timeout: float | None = None,
    ) -> Any:
        with self._open(method, route, body, rejected_on_400=rejected_on_400, timeout=timeout) as response:
            try:
                raw = response.read()
            except OSError as exc:
                raise ComfyUIUnavailableError(self.base_url, f"{method} {route}: {exc}") from exc
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            raise ComfyUIHTTPError(
                method, self.base_url + route, response.status, raw.decode(errors="replace")
            ) from None

    def _open(
        self,
        method: str,
        route: str,
        body: Any = None,
        *,
        rejected_on_400: bool = False,
        timeout: float | None = None,
        content_type: str = "application/json",
    ) -> Any:
        """`body` is sent as JSON, or as it is when it is bytes of `content_type`."""
        url = self.base_url + route
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        headers = {"Content-Type": content_type} if data is not None else {}
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            return _DIRECT.open(request, timeout=self.timeout if timeout is None else timeout)
        except urllib.error.HTTPError as exc:
            with exc:
                text = exc.read().decode(errors="replace")
            if rejected_on_400 and exc.code == 400:
                try:
                    answer = json.loads(text)
                except ValueError:
                    answer = None
                if isinstance(answer, dict):
                    raise PromptRejectedError(answer) from None
            raise ComfyUIHTTPError(method, url, exc.code, text) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ComfyUIUnavailableError(self.base_url, str(reason)) from exc
