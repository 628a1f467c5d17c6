"""A model image run as a container with no network, talked to from inside it.

The container has only its loopback interface (`--network none`), so requests to coglet (port 5000) are
sent by a small Python client started in the container with `docker exec`: nothing crosses a network.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.image.engine import DockerEngine

__all__ = ["NO_PRELOAD", "Container", "Response", "data_uri_bytes", "start"]

NO_PRELOAD = ("-e", "BASE_MODEL_KIT=")  # the image's default kit (sd15) cannot be fetched without a network

CLIENT = """
import json, sys, urllib.error, urllib.request
method, path, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
body = sys.stdin.buffer.read() or None
request = urllib.request.Request("http://127.0.0.1:5000" + path, data=body, method=method,
                                 headers={"Content-Type": "application/json"})
try:
    with urllib.request.urlopen(request, timeout=timeout) as response:
        status, data = response.status, response.read()
except urllib.error.HTTPError as error:
    status, data = error.code, error.read()
except OSError as error:
    status, data = 0, str(error).encode()
print(json.dumps({"status": status, "body": data.decode("utf-8", "replace")}))
"""


@dataclass
class Response:
    status: int  # 0: no answer (coglet not listening yet)
    body: str

    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Container:
    """`docker run -d --network none IMAGE` with extra `docker run` options; removed by `remove()`."""

    engine: DockerEngine
    image: str
    options: tuple[str, ...] = ()
    name: str = field(default_factory=lambda: f"cog-comfyui-test-{uuid.uuid4().hex[:10]}")
    started_at: float = 0.0

    def start(self) -> Container:
        self.started_at = time.monotonic()
        self.engine.run("run", "-d", "--name", self.name, "--network", "none", *self.options, self.image)
        return self

    def request(self, method: str, path: str, body: dict | None = None, *, timeout: float = 300) -> Response:
        data = json.dumps(body).encode() if body is not None else b""
        result = self.engine.run(
            "exec", "-i", self.name, "python", "-c", CLIENT, method, path, str(timeout),
            input=data, timeout=timeout + 30,
        )  # fmt: skip
        answer = json.loads(result.stdout)
        return Response(answer["status"], answer["body"])

    def wait_setup(self, timeout: float = 300) -> tuple[str, float]:
        """Poll /health-check (coglet offers no event) until setup ends; its status and seconds since run."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise RuntimeError(f"the container exited during setup:\n{self.logs()[-4000:]}")
            answer = self.request("GET", "/health-check", timeout=5)
            if answer.status == 200 and (status := answer.json().get("status")) not in (None, "STARTING"):
                return status, time.monotonic() - self.started_at
            time.sleep(0.2)
        raise TimeoutError(f"setup did not end in {timeout} s:\n{self.logs()[-4000:]}")

    def predict(self, inputs: dict[str, Any], *, timeout: float = 300) -> Response:
        return self.request("POST", "/predictions", {"input": inputs}, timeout=timeout)

    def read(self, path: str) -> bytes:
        return self.engine.run("exec", self.name, "cat", path).stdout

    def exec(self, *command: str) -> str:
        """`docker exec` of `command`: its standard output and error, stripped (DockerError if it fails)."""
        result = self.engine.run("exec", self.name, *command)
        return (result.stdout + result.stderr).decode(errors="replace").strip()

    def processes(self) -> str:
        """`ps` in the container, whole command lines (ps cuts them at 80 columns without `-ww`)."""
        return self.engine.text("top", self.name, "-ww", "-eo", "pid,args")

    def running(self) -> bool:
        return self.engine.text("inspect", "--format", "{{.State.Running}}", self.name) == "true"

    def exit_code(self) -> int:
        return int(self.engine.text("inspect", "--format", "{{.State.ExitCode}}", self.name))

    def stop(self, grace: int) -> float:
        """`docker stop -t grace`: SIGTERM, SIGKILL after `grace` seconds. Returns the seconds it took."""
        started = time.monotonic()
        self.engine.run("stop", "-t", str(grace), self.name, timeout=grace + 60)
        return time.monotonic() - started

    def logs(self) -> str:
        result = self.engine.run("logs", self.name, check=False)
        return (result.stdout + result.stderr).decode(errors="replace")

    def remove(self) -> None:
        self.engine.run("rm", "-f", self.name, check=False)


def start(engine: DockerEngine, started: list[Container], image: str, *options: str) -> Container:
    """A container of `image` started and added to `started` (the `container` fixture removes them)."""
    running = Container(engine, image, options)
    started.append(running)
    return running.start()


def data_uri_bytes(uri: str) -> bytes:
    header, _, payload = uri.partition(",")
    assert header.startswith("data:") and header.endswith(";base64"), header
    return base64.b64decode(payload)
