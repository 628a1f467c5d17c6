"""A real nginx on 127.0.0.1 serving a folder, configured and run from a temporary directory.

Used by the nginx download test and by `python -m bench download`. Everything nginx writes (pid, logs,
temp files) stays in `workdir`; `daemon off` keeps it a child process we can stop. Files under `/` are
served at full speed; under `/limited/`, each response is capped at `limit_rate` (nginx syntax, e.g.
`50m`), as CDNs cap a single stream.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

NGINX_PATHS = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")

_CONFIG = """\
{user}
daemon off;
worker_processes {workers};
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    log_format ranges '$status "$http_range" $body_bytes_sent $connection';
    access_log {work}/access.log ranges;
    client_body_temp_path {work}/client_body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location /limited/ {{
            alias {root}/;
            limit_rate {limit_rate};
        }}
    }}
}}
"""


def nginx_binary() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    return next((path for path in NGINX_PATHS if os.access(path, os.X_OK)), None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Nginx:
    """`with Nginx(root, workdir) as nginx:` serves `root`; `nginx.url("/f")`, `nginx.url("/limited/f")`."""

    def __init__(self, root: Path, workdir: Path, *, limit_rate: str = "50m", workers: int = 1) -> None:
        self.root = Path(root).absolute()
        self.workdir = Path(workdir).absolute()
        self.limit_rate = limit_rate
        self.workers = workers
        self.port = 0
        self._process: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        """The nginx master's process id while it runs."""
        return self._process.pid if self._process is not None else None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def access_log(self) -> list[str]:
        path = self.workdir / "access.log"
        return path.read_text().splitlines() if path.exists() else []

    def __enter__(self) -> Nginx:
        binary = nginx_binary()
        if binary is None:
            raise FileNotFoundError("nginx is not installed (apt-get install nginx; .ci/run does this)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):  # another process may take the free port before nginx binds it
            self.port = _free_port()
            config = self.workdir / "nginx.conf"
            config.write_text(
                _CONFIG.format(
                    user="user root;" if os.geteuid() == 0 else "",
                    workers=self.workers,
                    work=self.workdir,
                    port=self.port,
                    root=self.root,
                    limit_rate=self.limit_rate,
                )
            )
            self._process = subprocess.Popen(
                [binary, "-c", str(config), "-p", str(self.workdir), "-e", str(self.workdir / "error.log")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            if self._wait_ready():
                return self
            self.__exit__()
            if attempt == 2:
                raise RuntimeError(f"nginx did not start: {(self.workdir / 'error.log').read_text()[-2000:]}")
        return self

    def _wait_ready(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.02)
        return False

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            if self._process.stderr is not None:
                self._process.stderr.close()
            self._process = None
