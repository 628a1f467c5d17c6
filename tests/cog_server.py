"""The real Cog runtime serving `predict.py`, as a child process on a free port.

`pip install cog` brings coglet, the server inside every Cog image; this starts it exactly as an image
does (`python -m cog.server.http`) with `COG_PREDICT_TYPE_STUB=predict.py:Predictor`, then talks to it
over HTTP: `GET /health-check`, `POST /predictions`. Before it starts, `.cog/openapi_schema.json` is
written from predict.py as `cog build` writes it, so coglet validates inputs here as in the image.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from cogbuild import write_schema

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class CogServer:
    """`with CogServer(env) as cog:` starts coglet and waits for setup to end (READY or SETUP_FAILED)."""

    def __init__(self, env: dict[str, str], *, log_path: Path, setup_timeout: float = 90.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.setup_timeout = setup_timeout
        bin_dir = str(Path(sys.executable).parent)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("COMFYUI_", "WEIGHTS_", "PRELOAD_"))},
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),  # coglet's worker runs `python`
            "PORT": str(self.port),
            "COG_PREDICT_TYPE_STUB": "predict.py:Predictor",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> CogServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> dict[str, Any]:
        """Launch coglet and wait for setup to end; its health then."""
        self.launch()
        return self.wait_setup()

    def launch(self) -> None:
        """Launch coglet without waiting for its setup."""
        write_schema(self.env["COG_PREDICT_TYPE_STUB"], ROOT)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cog.server.http", "--host", "127.0.0.1"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_setup(self) -> dict[str, Any]:
        assert self.process is not None
        deadline = time.monotonic() + self.setup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"coglet exited with {self.process.returncode}:\n{self.log()}")
            health = self._health_or_none()
            if health is not None and health.get("status") not in (None, "STARTING"):
                return health
            time.sleep(0.05)  # polling a server that has no event to wait on
        raise TimeoutError(f"coglet setup did not end in {self.setup_timeout} s:\n{self.log()}")

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/health-check", timeout=10) as response:
            return json.load(response)

    def idle_health(self) -> dict[str, Any]:
        """The health once the last prediction has let go: coglet can answer a prediction before it frees
        the slot, so BUSY can follow the answer for a moment (seen beside a second suite)."""
        return wait_for(lambda: (h := self.health())["status"] != "BUSY" and h, timeout=30)

    def _health_or_none(self) -> dict[str, Any] | None:
        try:
            return self.health()
        except (urllib.error.URLError, ConnectionError, json.JSONDecodeError):
            return None

    def predict(self, inputs: dict[str, Any], *, timeout: float = 120.0) -> dict[str, Any]:
        """POST /predictions and wait for the answer (status succeeded or failed, output, logs, metrics).

        coglet answers 409 "at capacity" until the slot of the previous prediction is released, which
        can be a moment after that prediction's answer was sent; such a request is sent again.
        """
        deadline = time.monotonic() + timeout
        while True:
            answer = self._send("POST", "/predictions", {"input": inputs}, timeout)
            if answer.get("http_status") != 409 or time.monotonic() > deadline:
                return answer
            time.sleep(0.02)  # the slot is released asynchronously; nothing to wait on but time

    def put_prediction(
        self, prediction_id: str, inputs: dict[str, Any], *, timeout: float = 120.0
    ) -> dict[str, Any]:
        """PUT /predictions/<id>: a prediction with our id (so it can be cancelled), answered when done."""
        body = {"id": prediction_id, "input": inputs}
        return self._send("PUT", f"/predictions/{prediction_id}", body, timeout)

    def _send(self, method: str, path: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        """The JSON answer; an HTTP error's body with its status as `http_status`."""
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            return json.loads(error.read() or b"{}") | {"http_status": error.code}

    def cancel(self, prediction_id: str) -> None:
        request = urllib.request.Request(f"{self.url}/predictions/{prediction_id}/cancel", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Stop coglet as a container stop does (SIGTERM to the server only), so that its worker exits
        through its exit handlers and stops ComfyUI; kill whatever is left of the group after that."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, 9)
        self.process.wait()


def data_uri_bytes(uri: str) -> bytes:
    """The bytes of a `data:...;base64,...` output (coglet returns files so when it has nowhere to upload)."""
    header, _, payload = uri.partition(",")
    assert header.startswith("data:") and header.endswith(";base64"), header
    return base64.b64decode(payload)


def data_uri(data: bytes, media_type: str) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def wait_for(condition: Callable[[], T], *, timeout: float) -> T:
    """The first truthy value of `condition()`, polled until `timeout` (a backstop: the servers offer no
    event to wait on, and a busy machine only makes the wait longer)."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return value


def comfyui_processes(marker: str) -> list[int]:
    """Live ComfyUI processes (`main.py`) whose command line holds `marker`, such as its input folder."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"main.py" in command and marker.encode() in command and process_exists(int(proc.name)):
            pids.append(int(proc.name))
    return pids


def process_exists(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped (a container's init may never reap it). The main thread
    of a process shows `Z` while its other threads still exit, holding its sockets: those count."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        threads = len(list(Path(f"/proc/{pid}/task").iterdir()))
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z" or threads > 1
