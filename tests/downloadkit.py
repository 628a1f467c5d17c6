"""Shared pieces of the download tests: fast settings, deterministic payloads, leftover checks, small
volumes, cancelling a thread as coglet does."""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import io
import json
import os
import random
import subprocess
import tarfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path

import pytest

from weightkit.settings import Credential, DownloadSettings

FAST = DownloadSettings(
    connections_per_file=4,
    max_connections=8,
    concurrent_files=2,
    chunk_size=256 << 10,
    stall_timeout=0.5,
    retries=3,
    backoff=0.01,
    backoff_max=0.05,
    max_retry_after=5.0,
    lock_timeout=5.0,
    min_free_bytes=0,
    progress_interval=60.0,
)


def fast_settings(**changes) -> DownloadSettings:
    return replace(FAST, **changes)


def with_token(settings: DownloadSettings, origin: str, token: str | None, env_var: str = "HF_TOKEN"):
    return replace(settings, credentials=(Credential(env_var=env_var, origins=(origin,), token=token),))


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def safetensors_bytes(data_size: int, seed: int = 0) -> bytes:
    """A valid safetensors file: one uint8 tensor of `data_size` bytes."""
    header = json.dumps({"t": {"dtype": "U8", "shape": [data_size], "data_offsets": [0, data_size]}}).encode()
    return len(header).to_bytes(8, "little") + header + payload(data_size, seed)


def tar_bytes(files: Mapping[str, bytes], mode: str = "w") -> bytes:
    """A tar (`mode` "w:gz" for a gzipped one) holding each name's bytes as a regular file."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def leftovers(folder: Path) -> list[str]:
    """Anything a download left behind besides final files and its lock files."""
    return sorted(
        p.name
        for p in folder.rglob("*")
        if p.name.endswith((".part", ".part.json", ".tmp")) or ".extract" in p.name
    )


@contextlib.contextmanager
def tmpfs(folder: Path, size: str = "30m") -> Iterator[Path]:
    """A small tmpfs mounted at `folder` (root only; the caller skips otherwise), unmounted after."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def remount_readonly(folder: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


def raise_in(thread: threading.Thread, exc_type: type[BaseException]) -> None:
    """Raise `exc_type` in `thread` asynchronously, as coglet cancels a running sync predictor."""
    assert thread.ident is not None
    done = ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread.ident), ctypes.py_object(exc_type)
    )
    assert done == 1, "the thread was not found"
