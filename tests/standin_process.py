"""Start ComfyUI as a real process for a test, on a free port with its own directories, and stop it cleanly.

By default this starts the stand-in (`tests/comfyui_standin/main.py`); with `COMFYUI_PATH` set it starts
that ComfyUI checkout's `main.py` with the same command line instead, run by `COMFYUI_PYTHON` (default:
this interpreter). Tests that need their own server should skip when `attached_url()` is set.
Readiness is ComfyUI's own log line `To see the GUI go to: ...`, printed once the port accepts
connections.

    with start_comfyui(tmp_path) as comfy:
        comfy.url                     # http://127.0.0.1:PORT
        comfy.dirs.models / "upscale_models"
        comfy.ws_url("my-client-id")
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

STANDIN_PATH = Path(__file__).resolve().parent / "comfyui_standin"
READY_LINE = "To see the GUI go to:"


def comfyui_path() -> Path:
    """The checkout to run: `COMFYUI_PATH`, else the stand-in."""
    return Path(os.environ.get("COMFYUI_PATH", "").strip() or STANDIN_PATH)


def comfyui_python() -> str:
    """The Python that runs it: `COMFYUI_PYTHON`, else this one."""
    return os.environ.get("COMFYUI_PYTHON", "").strip() or sys.executable


def running_standin() -> bool:
    return comfyui_path().resolve() == STANDIN_PATH


def attached_url() -> str | None:
    """`COMFYUI_URL` when set without `COMFYUI_PATH`: a server tests may talk to but cannot start."""
    url = os.environ.get("COMFYUI_URL", "").strip()
    return url if url and not os.environ.get("COMFYUI_PATH", "").strip() else None


@dataclass(frozen=True)
class ComfyDirs:
    """The directories of one ComfyUI started with `--base-directory base`."""

    base: Path

    @property
    def models(self) -> Path:
        return self.base / "models"

    @property
    def input(self) -> Path:
        return self.base / "input"

    @property
    def output(self) -> Path:
        return self.base / "output"

    @property
    def temp(self) -> Path:
        return self.base / "temp"

    def model_folder(self, name: str) -> Path:
        """`models/<name>`, created."""
        folder = self.models / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder


class ComfyProcess:
    """A running ComfyUI; a context manager that stops it on exit."""

    def __init__(self, process: subprocess.Popen[str], port: int, dirs: ComfyDirs, lines: list[str]) -> None:
        self.process = process
        self.port = port
        self.dirs = dirs
        self._lines = lines

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, client_id: str | None = None) -> str:
        return f"ws://127.0.0.1:{self.port}/ws" + (f"?clientId={client_id}" if client_id else "")

    def log(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        return "".join(self._lines)

    def stop(self) -> int | None:
        """Ctrl-C (ComfyUI's clean stop, which empties its temp folder) and wait for it to end; returns the
        exit code. No grace period that a busy machine could outlast: a server that never ends is a bug,
        left to the test's own timeout."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        """Die at once, as a crashed or OOM-killed ComfyUI does."""
        self.process.kill()
        self.process.wait()

    def __enter__(self) -> ComfyProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_comfyui(
    base: Path,
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    startup_timeout: float = 60.0,
) -> ComfyProcess:
    """Start ComfyUI with `--base-directory base` on a free port; raises RuntimeError (with its log) if it
    exits or is not listening within `startup_timeout` seconds. A port taken meanwhile is retried."""
    custom_nodes = base / "custom_nodes"  # real ComfyUI lists it at start
    custom_nodes.mkdir(parents=True, exist_ok=True)
    if not running_standin():  # the custom nodes a checkout ships (SaveImageWebsocket), as recorded
        for shipped in (comfyui_path() / "custom_nodes").glob("*.py"):
            shutil.copyfile(shipped, custom_nodes / shipped.name)
    for _ in range(3):
        process, port, lines, ready = _launch(base, args, env)
        if (
            ready.wait(startup_timeout)
            and process.poll() is None
            and any(READY_LINE in line for line in lines)
        ):
            return ComfyProcess(process, port, ComfyDirs(base), lines)
        if process.poll() is None:
            process.kill()
        process.wait()
        log = "".join(lines)
        if "address already in use" not in log.lower():
            raise RuntimeError(
                f"ComfyUI at {comfyui_path()} did not start (exit code {process.returncode}):\n{log}"
            )
    raise RuntimeError(f"ComfyUI at {comfyui_path()} found no free port:\n{log}")


def _launch(
    base: Path, args: Sequence[str], env: Mapping[str, str] | None
) -> tuple[subprocess.Popen[str], int, list[str], threading.Event]:
    port = free_port()
    command = [
        comfyui_python(),
        str(comfyui_path() / "main.py"),
        "--listen",
        "127.0.0.1",
        "--port",
        str(port),
        "--base-directory",
        str(base),
        "--cpu",
        "--disable-auto-launch",
        *args,
    ]
    process = subprocess.Popen(
        command,
        cwd=base,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # A suite run in the background by a non-interactive shell has SIGINT ignored, and a child would
        # inherit that: ComfyUI's clean stop is SIGINT.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if READY_LINE in line:
                ready.set()
        ready.set()

    threading.Thread(target=read, name=f"comfyui-log-{port}", daemon=True).start()
    return process, port, lines, ready
