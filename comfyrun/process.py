"""ComfyUI as a child process: its command line, its log lines forwarded with a prefix, readiness, stop.

The last log lines are kept in a ring buffer so that a failure to start, or a death mid-run, can say
what ComfyUI printed last; custom node packs it says failed to import are kept too (`import_failures`).
ComfyUI is started in its own session so that stopping it also ends the processes it started (custom
nodes sometimes spawn helpers); it is asked to stop with SIGINT, which it handles by shutting down its
server and cleaning its temp directory, then killed if it lingers. It runs under `parent_watch.py`, which
kills it and its helpers when this process ends in any way, SIGKILL included.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from comfyrun.errors import ComfyUIHTTPError, ComfyUIStartError, ComfyUIUnavailableError
from comfyrun.http import ComfyHTTP
from comfyrun.nodeclasses import ImportFailures
from comfyrun.settings import RuntimeSettings

__all__ = ["HOST", "ComfyProcess", "free_port"]

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
LOG_TAIL_LINES = 40
PARENT_WATCH = Path(__file__).resolve().parent / "parent_watch.py"


def free_port(host: str = HOST) -> int:
    """A port nothing listens on right now (ComfyUI fails to start, saying so, if one takes it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _user_directory(settings: RuntimeSettings) -> Path | None:
    """Where ComfyUI keeps its user folder when it cannot in its checkout, else None.

    ComfyUI's user manager creates `<checkout>/user` at start and stops where it cannot (a read-only
    image: `docker run --read-only`); then it gets one beside its temp folder, which is ours to write."""
    try:
        (settings.comfyui_path / "user").mkdir(exist_ok=True)
    except OSError:
        fallback = settings.temp_dir / "user"
        fallback.mkdir(parents=True, exist_ok=True)
        return fallback
    return None


class ComfyProcess:
    """One ComfyUI server started from the checkout at `settings.comfyui_path`."""

    def __init__(
        self,
        settings: RuntimeSettings,
        *,
        port: int,
        model_paths_files: Sequence[Path],
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.port = port
        self.model_paths_files = tuple(model_paths_files)
        self.env = dict(env or {})  # added to this process's environment (custom nodes' settings)
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        self.import_failures = ImportFailures()
        self._lifeline: int | None = None  # the write end of the pipe parent_watch.py reads
        self._reaping = threading.Lock()  # `stop()` may come from two threads: close the pipe once

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def command(self) -> list[str]:
        s = self.settings
        command = [
            s.python,
            str((s.comfyui_path / "main.py").absolute()),
            "--listen",
            HOST,
            "--port",
            str(self.port),
            "--input-directory",
            str(s.input_dir.absolute()),
            "--output-directory",
            str(s.output_dir.absolute()),
            "--temp-directory",
            str(s.temp_dir.absolute()),
            "--disable-auto-launch",
        ]
        if "--user-directory" not in s.extra_args and (user := _user_directory(s)) is not None:
            command += ["--user-directory", str(user.absolute())]
        if self.model_paths_files:
            command += ["--extra-model-paths-config", *(str(p.absolute()) for p in self.model_paths_files)]
        return command + list(s.extra_args)

    def start(self) -> None:
        """Launch ComfyUI; raises `ComfyUIStartError` if there is no checkout or it cannot be executed."""
        command = self.command()
        if not (self.settings.comfyui_path / "main.py").is_file():
            raise ComfyUIStartError(
                f"there is no main.py in COMFYUI_PATH={self.settings.comfyui_path}",
                command=command,
                exit_code=None,
                log_tail=(),
            )
        logger.info("starting ComfyUI: %s", " ".join(command))
        watched, self._lifeline = os.pipe()
        try:
            self._process = subprocess.Popen(
                [command[0], str(PARENT_WATCH), str(watched), *command[1:]],
                cwd=self.settings.comfyui_path,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
                pass_fds=(watched,),
            )
        except OSError as exc:
            os.close(self._lifeline)
            self._lifeline = None
            raise ComfyUIStartError(str(exc), command=command, exit_code=None, log_tail=()) from exc
        finally:
            os.close(watched)
        # ComfyUI runs in its own session, so a signal to our process group does not reach it: stop it
        # when this interpreter exits (Cog's server stopping its worker), or it would outlive us.
        atexit.register(self.stop)
        assert self._process.stdout is not None
        self._reader = threading.Thread(
            target=self._forward, args=(self._process.stdout,), name="comfyui-log", daemon=True
        )
        self._reader.start()

    def _forward(self, stream: IO[bytes]) -> None:
        prefix = self.settings.log_prefix
        for raw in stream:
            # A progress bar rewrites its line with \r: keep what it shows last.
            line = raw.decode(errors="replace").rstrip("\r\n").rsplit("\r", 1)[-1]
            self._tail.append(line)
            self.import_failures.feed(line)
            logger.info("%s%s", prefix, line)
        stream.close()

    def exit_code(self) -> int | None:
        return self._process.poll() if self._process is not None else None

    def wait(self) -> int:
        """Block until ComfyUI exits; its exit code (negative: the signal that killed it)."""
        assert self._process is not None, "start() first"
        return self._process.wait()

    def log_tail(self) -> list[str]:
        """The last lines ComfyUI printed; after it exited, all of them up to its end."""
        if self._reader is not None and self.exit_code() is not None:
            self._reader.join(timeout=2.0)
        return list(self._tail)

    def wait_ready(self, http: ComfyHTTP, timeout: float) -> None:
        """Return once `/system_stats` answers; raises `ComfyUIStartError` if ComfyUI exits or is silent."""
        assert self._process is not None, "start() first"
        started = time.monotonic()
        while True:
            code = self._process.poll()
            if code is not None:
                raise ComfyUIStartError(
                    f"it exited with code {code}",
                    command=self.command(),
                    exit_code=code,
                    log_tail=self.log_tail(),
                )
            try:
                http.system_stats(timeout=2.0)
                logger.info("ComfyUI answers at %s after %.1f s", self.url, time.monotonic() - started)
                return
            except (ComfyUIUnavailableError, ComfyUIHTTPError):
                pass
            if time.monotonic() - started > timeout:
                tail = self.log_tail()
                self.stop()
                raise ComfyUIStartError(
                    f"/system_stats did not answer within {timeout:g} s (COMFYUI_START_TIMEOUT)",
                    command=self.command(),
                    exit_code=None,
                    log_tail=tail,
                )
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=0.1)  # a pause that ends early if ComfyUI exits

    def stop(self, grace: float = 10.0) -> None:
        """Ask ComfyUI to stop (SIGINT), kill its process group after `grace` seconds."""
        atexit.unregister(self.stop)
        process = self._process
        if process is None or process.poll() is not None:
            self._reap()
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            logger.warning("ComfyUI did not stop within %g s; killing it", grace)
        self._reap()

    def _reap(self) -> None:
        """Kill what is left of ComfyUI's process group (itself, or helpers it left behind)."""
        process = self._process
        if process is None:
            return
        with self._reaping:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            if self._lifeline is not None:
                os.close(self._lifeline)
                self._lifeline = None
        if self._reader is not None:
            self._reader.join(timeout=2.0)
