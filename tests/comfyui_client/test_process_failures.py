"""A ComfyUI process that dies mid-run, exits at start, never answers, or is not there."""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import sys
import textwrap
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from comfyrun.errors import ComfyUIDiedError, ComfyUIStartError, StartStoppedError
from comfyrun.settings import RuntimeSettings
from comfyrun.supervisor import Supervisor
from comfyui import ComfyUI
from tests.comfyui_watch import SLOW, in_thread, logged, needs_own_server, upscale
from weightkit.settings import WeightSettings

pytestmark = pytest.mark.comfyui


def _fake_checkout(root: Path, main: str) -> Path:
    root.mkdir()
    (root / "main.py").write_text(textwrap.dedent(main))
    return root


def _settings(tmp_path: Path, checkout: Path, **overrides) -> RuntimeSettings:
    return RuntimeSettings(
        weights=WeightSettings(comfyui_path=checkout, weights_dir=tmp_path / "weights"),
        python=sys.executable,
        input_dir=tmp_path / "input",
        output_dir=tmp_path / "output",
        temp_dir=tmp_path / "temp",
        model_paths_file=tmp_path / "extra_model_paths.yaml",
        **overrides,
    )


@needs_own_server
@pytest.mark.parametrize(
    ("limit", "after"),
    [(5, "It is being started again for the next prediction."), (0, "It is not started again")],
)
def test_comfyui_killed_mid_run_fails_saying_so_with_its_last_log_lines(comfy, tmp_path, limit, after):
    doomed = ComfyUI(
        replace(
            comfy.settings,
            input_dir=tmp_path / "in",
            output_dir=tmp_path / "out",
            temp_dir=tmp_path / "tmp",
            restart_limit=limit,
        )
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COMFYUI_STANDIN_STEP_DELAY", "0.1")
        doomed.start()
    try:
        with logged("running node 3") as running:
            thread, result = in_thread(lambda: doomed.run(upscale("killed", size=SLOW)))
            assert running.wait(30)
            os.kill(doomed.pid, signal.SIGKILL)
            thread.join(30)
    finally:
        doomed.stop()
    (error,) = result
    assert isinstance(error, ComfyUIDiedError)
    assert error.exit_code == -signal.SIGKILL
    assert error.log_tail and "got prompt" in "\n".join(error.log_tail)
    assert "was killed by SIGKILL (exit code -9) while running prompt" in str(error)
    assert after in str(error) and error.restarting is (limit > 0)


def test_server_that_exits_at_start_fails_with_its_exit_code_and_last_log_lines(tmp_path, caplog):
    checkout = _fake_checkout(
        tmp_path / "ComfyUI",
        """
        import sys
        for n in range(60):
            print(f"loading custom node {n}")
        print("Traceback: ImportError: No module named 'torch'", file=sys.stderr)
        sys.exit(3)
        """,
    )
    comfy = ComfyUI(_settings(tmp_path, checkout, log_prefix="[test-comfy] "))
    with caplog.at_level(logging.INFO, logger="comfyrun.process"), pytest.raises(ComfyUIStartError) as info:
        comfy.start()
    error = info.value
    assert error.exit_code == 3
    assert error.log_tail[-1] == "Traceback: ImportError: No module named 'torch'"
    assert error.log_tail[0] == "loading custom node 21"  # the last 40 lines, not all of them
    assert "exited with code 3" in str(error) and "No module named 'torch'" in str(error)
    assert "[test-comfy] loading custom node 0" in caplog.text  # forwarded as it printed


def test_server_that_never_answers_fails_after_the_start_timeout_and_is_stopped(tmp_path):
    checkout = _fake_checkout(
        tmp_path / "ComfyUI",
        """
        import os, sys, time
        print("starting, but never listening", os.getpid(), flush=True)
        print(" ".join(sys.argv[1:]), flush=True)
        while True:
            time.sleep(1)
        """,
    )
    comfy = ComfyUI(_settings(tmp_path, checkout, start_timeout=1.0, port=None))
    with pytest.raises(ComfyUIStartError) as info:
        comfy.start()
    assert "did not answer within 1 s" in str(info.value)
    assert info.value.exit_code is None
    assert info.value.log_tail[0].startswith("starting, but never listening")
    arguments = info.value.log_tail[1].split()
    assert arguments[:2] == ["--listen", "127.0.0.1"]
    assert "--extra-model-paths-config" in arguments and "--disable-auto-launch" in arguments
    pid = int(info.value.log_tail[0].split()[-1])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped and reaped


def test_missing_checkout_fails_before_starting_anything(tmp_path):
    comfy = ComfyUI(_settings(tmp_path, tmp_path / "nowhere"))
    with pytest.raises(ComfyUIStartError, match=r"there is no main\.py in COMFYUI_PATH="):
        comfy.start()


def _open_pipes() -> set[str]:
    pipes = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):  # the listing's own descriptor is gone by now
            link = os.readlink(f"/proc/self/fd/{fd}")
            if link.startswith("pipe:"):
                pipes.add(link)
    return pipes


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _ends(pid: int, timeout: float = 10.0) -> bool:
    """Whether process `pid` ends within `timeout` (a kill is delivered asynchronously)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


def test_a_dead_comfyuis_helpers_are_killed_and_its_pipe_closed_before_it_is_started_again(tmp_path):
    checkout = _fake_checkout(
        tmp_path / "ComfyUI",
        """
        import argparse, http.server, os, subprocess
        parser = argparse.ArgumentParser()
        parser.add_argument("--port", type=int)
        port = parser.parse_known_args()[0].port
        helper = subprocess.Popen(["sleep", "300"])  # a custom node's helper, in ComfyUI's group
        with open(os.environ["HELPERS"], "a") as pids:
            pids.write(f"{helper.pid}\\n")
        class Stats(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
            def log_message(self, *args):
                pass
        http.server.HTTPServer(("127.0.0.1", port), Stats).serve_forever()
        """,
    )
    helpers = tmp_path / "helpers"
    restarted = threading.Event()
    supervisor = Supervisor(
        _settings(tmp_path, checkout, port=None),
        model_paths_files=(),
        env={"HELPERS": str(helpers)},
        on_restart=restarted.set,
    )
    unrelated = _open_pipes()
    supervisor.start()
    try:
        first = supervisor.process
        assert first is not None and first.pid is not None
        firsts = _open_pipes() - unrelated
        os.kill(first.pid, signal.SIGKILL)  # as the out-of-memory killer would: its helper stays
        assert restarted.wait(timeout=60)
        first_helper, second_helper = (int(pid) for pid in helpers.read_text().split())
        assert _ends(first_helper, timeout=0) and _running(second_helper)  # ended before the restart
        assert firsts and not firsts & _open_pipes()  # the dead one's lifeline and log pipe are closed
    finally:
        supervisor.stop()
    assert _ends(second_helper)


def test_a_supervisor_stopped_before_its_start_launches_nothing(tmp_path):
    checkout = _fake_checkout(tmp_path / "ComfyUI", "import time\nwhile True:\n    time.sleep(1)\n")
    supervisor = Supervisor(_settings(tmp_path, checkout, start_timeout=1.0, port=None), model_paths_files=())
    supervisor.stop()  # as ComfyUI.stop() from another thread, between handing it over and its start
    with pytest.raises(StartStoppedError):
        supervisor.start()
    assert supervisor.process is None and supervisor.state == "stopped"
