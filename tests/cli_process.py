"""`python -m weightkit` run as a real process, as users run it: what each CLI test starts."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

Run = Callable[..., "subprocess.CompletedProcess[str]"]


def weightkit_runner(env: Mapping[str, str], cwd: Path) -> Run:
    """`run(*args, stdin=None, **extra_env)`: the CLI with `env` and `extra_env`, in `cwd`, as text."""

    def run(*args: str, stdin: bytes | None = None, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "weightkit", *args],
            input=stdin.decode() if stdin is not None else None,
            capture_output=True,
            text=True,
            env={**env, **extra_env},
            cwd=cwd,
            timeout=60,
        )

    return run
