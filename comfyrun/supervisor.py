"""Keep a ComfyUI started here running: start it again when it dies, within a limit.

One out-of-memory kill must not take a replica out for good. `Supervisor.start()` launches ComfyUI and
waits until it answers (raising `ComfyUIStartError` if it does not: a model that cannot start should fail
its setup). A watcher thread then waits for the process to exit; when it exits without being asked to,
the watcher logs why (exit code or signal, last log lines), kills what is left of its process group (the
helpers its custom nodes started) and starts it again after `RestartPolicy.delay` seconds: 1, 2, 4... up
to 30. Once it has died `limit` times within `window` seconds, or a restart itself
fails that often, the supervisor gives up: `state` becomes `failed`, `wait_ready()` raises
`ComfyUIDownError`, and the predictor's healthcheck reports it unhealthy so the platform replaces the
replica. A prompt keeps the `process` it was queued on, so it can tell that one died even if another
already answers on the same port.
"""

from __future__ import annotations

import atexit
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from comfyrun.errors import (
    ComfyRunError,
    ComfyUIDiedError,
    ComfyUIDownError,
    ComfyUIStartError,
    StartStoppedError,
    describe_exit,
)
from comfyrun.http import ComfyHTTP
from comfyrun.process import ComfyProcess, free_port
from comfyrun.settings import RuntimeSettings

__all__ = ["RestartPolicy", "Supervisor"]

logger = logging.getLogger(__name__)

State = Literal["stopped", "starting", "ready", "restarting", "failed"]


@dataclass(frozen=True)
class RestartPolicy:
    """How often a dead ComfyUI is started again: at most `limit` times within `window` seconds."""

    limit: int = 5
    window: float = 600.0
    first_delay: float = 1.0
    max_delay: float = 30.0

    def delay(self, recent: int) -> float:
        """Seconds to wait before the next start, when `recent` starts already happened in the window."""
        return min(self.max_delay, self.first_delay * 2.0**recent)

    def allows(self, recent: int) -> bool:
        return recent < self.limit


class Supervisor:
    """The ComfyUI process of one `comfyui.ComfyUI`, started again when it dies."""

    def __init__(
        self,
        settings: RuntimeSettings,
        *,
        model_paths_files: Sequence[Path],
        env: Mapping[str, str] | None = None,
        on_restart: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.policy = RestartPolicy(limit=settings.restart_limit, window=settings.restart_window)
        self.model_paths_files = tuple(model_paths_files)
        self.env = dict(env or {})
        self._on_restart = on_restart
        self._changed = threading.Condition()
        self._state: State = "stopped"
        self._ended = False  # stop() was called: a later start() raises instead of launching
        self._process: ComfyProcess | None = None
        self._launching: ComfyProcess | None = None  # started, not yet answering: `stop()` ends it too
        self._starts: list[float] = []  # when each restart began, for the window
        self._down_reason = ""
        self._down_tail: tuple[str, ...] = ()
        self._watcher: threading.Thread | None = None
        self._verdict: tuple[ComfyProcess, bool] | None = None  # the last death: started again or not

    # -- what callers see ----------------------------------------------------------------------------

    @property
    def state(self) -> State:
        with self._changed:
            return self._state

    @property
    def process(self) -> ComfyProcess | None:
        with self._changed:
            return self._process

    def wait_ready(self) -> ComfyProcess:
        """The running ComfyUI; waits while one is being started again. Raises `ComfyUIDownError`."""
        with self._changed:
            while self._state in ("starting", "restarting"):
                self._changed.wait()
            if self._state == "failed":
                raise ComfyUIDownError(self._down_reason, log_tail=self._down_tail)
            if self._state != "ready" or self._process is None:
                raise RuntimeError("ComfyUI is not started: call start() first")
            return self._process

    def check_health(self) -> None:
        """Raise `ComfyUIDownError` when ComfyUI is down for good (a restart under way is not)."""
        with self._changed:
            if self._state == "failed":
                raise ComfyUIDownError(self._down_reason, log_tail=self._down_tail)

    def check_alive(self, process: ComfyProcess | None, prompt_id: str) -> None:
        """Raise `ComfyUIDiedError` when `process`, the ComfyUI a prompt was queued on, has exited; it
        says whether ComfyUI is started again, as the watcher decides."""
        if process is not None and (code := process.exit_code()) is not None:
            restarting = self._restarts_after(process)
            raise ComfyUIDiedError(
                exit_code=code, prompt_id=prompt_id, log_tail=process.log_tail(), restarting=restarting
            )

    def _restarts_after(self, died: ComfyProcess) -> bool:
        """Whether the death of `died` is followed by a restart: decided once, by whoever asks first (the
        watcher, or a prompt that saw it die), so that the error and the watcher agree."""
        with self._changed:
            if self._verdict is None or self._verdict[0] is not died:
                now = time.monotonic()
                recent = sum(1 for started in self._starts if now - started < self.policy.window)
                self._verdict = (died, self._state != "stopped" and self.policy.allows(recent))
            return self._verdict[1]

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Launch ComfyUI and wait until it answers; raises `ComfyUIStartError`."""
        with self._changed:
            if self._ended:  # stop() came first, from another thread: this supervisor is done
                raise StartStoppedError("ComfyUI was stopped before it started")
            self._state = "starting"
        try:
            self._launch(self.settings.port or free_port())
        except BaseException:
            self._set("stopped")
            raise
        atexit.register(self.stop)  # before the process's own handler: no restart while exiting
        self._watcher = threading.Thread(target=self._watch, name="comfyui-supervisor", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        """Stop ComfyUI and its watcher; it is not started again. A start under way in another thread
        ends at once (its `start()` raises `StartStoppedError`)."""
        atexit.unregister(self.stop)
        with self._changed:
            self._state, self._ended = "stopped", True
            process, self._process = self._process, None
            launching, self._launching = self._launching, None
            self._changed.notify_all()
        for each in (process, launching):
            if each is not None:
                each.stop()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout=5.0)
        self._watcher = None

    def _launch(self, port: int) -> ComfyProcess:
        """A ComfyUI that answers, made the current one (`ready`); raises `ComfyUIStartError`, or
        `StartStoppedError` when `stop()` was called meanwhile (the process it was starting is stopped)."""
        process = ComfyProcess(
            self.settings, port=port, model_paths_files=self.model_paths_files, env=self.env
        )
        with self._changed:
            if self._state == "stopped":
                raise StartStoppedError("ComfyUI was stopped before it started")
            process.start()
            self._launching = process
        try:
            process.wait_ready(ComfyHTTP(process.url), self.settings.start_timeout)
            with self._changed:  # ready at once, or stopped: no `stop()` may fall in between
                if self._state == "stopped":
                    raise StartStoppedError("ComfyUI was stopped while it was starting")
                self._launching, self._process, self._state = None, process, "ready"
                self._changed.notify_all()
        except BaseException as exc:
            process.stop()
            with self._changed:
                stopped, self._launching = self._state == "stopped", None
            if stopped and isinstance(exc, ComfyUIStartError):  # it exited because `stop()` ended it
                raise StartStoppedError("ComfyUI was stopped while it was starting") from exc
            raise
        return process

    def _set(self, state: State, process: ComfyProcess | None = None) -> None:
        with self._changed:
            self._state = state
            if process is not None:
                self._process = process
            self._changed.notify_all()

    # -- the watcher ---------------------------------------------------------------------------------

    def _watch(self) -> None:
        while True:
            process = self.process
            if process is None:
                return
            code = process.wait()
            with self._changed:
                if self._state == "stopped" or self._process is not process:
                    return
                self._state = "restarting"
                self._changed.notify_all()
            tail = process.log_tail()
            process.stop()  # its process group: helpers its custom nodes started; and its lifeline pipe
            logger.error(
                "ComfyUI %s (exit code %s); last log lines:\n%s",
                describe_exit(code),
                code,
                "\n".join(f"  {line}" for line in tail) or "  (none)",
            )
            replacement = self._restart(f"it {describe_exit(code)}", tail, process)
            if replacement is None:
                return
            self._on_restart()

    def _restart(self, why: str, tail: Sequence[str], died: ComfyProcess) -> ComfyProcess | None:
        """A new ComfyUI, after the policy's delays; None when stopped or the policy says no more."""
        allowed: bool | None = self._restarts_after(died)  # None: ask the policy (a restart failed)
        while True:
            now = time.monotonic()
            self._starts = [t for t in self._starts if now - t < self.policy.window]
            recent = len(self._starts)
            if allowed is None:
                allowed = self.policy.allows(recent)
            if not allowed:
                reason = (
                    f"{why}, and it was started again {recent} time(s) within the last "
                    f"{self.policy.window:g} s, the most allowed"
                )
                logger.error("ComfyUI is down for good: %s", reason)
                with self._changed:
                    self._down_reason, self._down_tail = reason, tuple(tail)
                    if self._state != "stopped":
                        self._state = "failed"
                    self._changed.notify_all()
                return None
            delay = self.policy.delay(recent)
            logger.warning(
                "starting ComfyUI again in %g s (restart %d of at most %d within %g s)",
                delay,
                recent + 1,
                self.policy.limit,
                self.policy.window,
            )
            if self._wait_unless_stopped(delay):
                return None
            self._starts.append(time.monotonic())
            try:
                process = self._launch(died.port if _port_free(died.port) else free_port())
            except StartStoppedError:
                return None
            except ComfyRunError as exc:
                allowed = None
                why = f"starting it again failed: {exc}"
                tail = getattr(exc, "log_tail", tail)
                logger.error("%s", why)
                continue
            logger.info("ComfyUI is back at %s", process.url)
            return process

    def _wait_unless_stopped(self, seconds: float) -> bool:
        """Sleep `seconds`, waking early if stopped; True when stopped."""
        deadline = time.monotonic() + seconds
        with self._changed:
            while self._state != "stopped" and (left := deadline - time.monotonic()) > 0:
                self._changed.wait(left)
            return self._state == "stopped"


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
