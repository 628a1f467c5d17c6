"""The Docker engine for the image tests: used if one answers, else started here and stopped afterwards.

A dockerd started here has no container network at all (`--bridge=none --iptables=false`): no bridge is
created and no NAT rule written. Builds that install packages run with `--network host` (this machine's
own way to its package registries); containers run with `--network none`. Docker images come from
nowhere but this machine (no registry is reachable here).

The client is Debian's (docker.io, 20.10), whose `docker build` drives the daemon's own BuildKit; a newer
client without the buildx plugin would fall back to the legacy builder, which has no `RUN --mount`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["DockerEngine", "DockerError", "docker_engine"]


class DockerError(RuntimeError):
    """A docker command failed; carries the command and what it printed."""

    def __init__(self, command: Sequence[str], code: int, output: str) -> None:
        self.command, self.code, self.output = list(command), code, output
        tail = "\n".join(output.splitlines()[-40:])
        super().__init__(f"`{' '.join(command[:6])} …` exited with {code}:\n{tail}")


def _client() -> str:
    for candidate in ("/usr/bin/docker", shutil.which("docker")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError("no docker client: apt-get install docker.io (see .ci/run)")


class DockerEngine:
    """Runs docker commands against one engine; `started` tells whether this process started dockerd."""

    def __init__(self, client: str, *, started: subprocess.Popen[bytes] | None = None) -> None:
        self.client = client
        self.started = started

    def run(
        self, *args: str, input: bytes | None = None, timeout: float = 600, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        command = [self.client, *args]
        env = {**os.environ, "DOCKER_BUILDKIT": "1"}
        result = subprocess.run(command, input=input, capture_output=True, timeout=timeout, env=env)
        if check and result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")
            raise DockerError(command, result.returncode, output)
        return result

    def text(self, *args: str, timeout: float = 600) -> str:
        return self.run(*args, timeout=timeout).stdout.decode().strip()

    def build(self, context: Path, dockerfile: str, tag: str, *, log: Path, network: str = "host") -> float:
        """`docker build` of `dockerfile` (text) in `context`, tagged `tag`; its log goes to `log`.
        Returns the seconds it took."""
        started = time.monotonic()
        command = [self.client, "build", "--progress", "plain", "--network", network, "-t", tag, "-f", "-"]
        with open(log, "ab") as out:
            out.write(f"\n===== build {tag} ({context}) =====\n".encode())
            out.flush()
            result = subprocess.run(
                [*command, str(context)],
                input=dockerfile.encode(),
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "DOCKER_BUILDKIT": "1"},
                timeout=3600,
            )
        if result.returncode != 0:
            raise DockerError(command, result.returncode, log.read_text(errors="replace"))
        return time.monotonic() - started

    def image_exists(self, tag: str) -> bool:
        return self.run("image", "inspect", tag, check=False).returncode == 0

    def answers(self) -> bool:
        try:
            return self.run("info", timeout=20, check=False).returncode == 0
        except subprocess.TimeoutExpired:
            return False


def _start_dockerd(log: Path) -> subprocess.Popen[bytes]:
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    with open(log, "ab") as out:
        return subprocess.Popen(
            [dockerd, "--bridge=none", "--iptables=false", "--ip-masq=false"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop_dockerd(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def docker_engine(log: Path, *, start_timeout: float = 60) -> Iterator[DockerEngine]:
    """An engine that answers: the running one, or a dockerd started here (and stopped on exit)."""
    engine = DockerEngine(_client())
    if engine.answers():
        yield engine
        return
    process = _start_dockerd(log)
    engine.started = process
    try:
        deadline = time.monotonic() + start_timeout
        while not engine.answers():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not start (see {log}):\n{log.read_text()[-3000:]}")
            time.sleep(0.2)  # the daemon offers no readiness event but its socket answering
        yield engine
    finally:
        _stop_dockerd(process)
