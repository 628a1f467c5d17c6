"""Shared test setup: the project root importable, and the fault-injecting servers most download tests use
(a module that needs files served from the start defines its own `server`)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.faultserver import FaultServer  # noqa: E402  (needs the root on sys.path)


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        yield running


@pytest.fixture
def other_server() -> Iterator[FaultServer]:
    """A second host, for redirects and mirrors."""
    with FaultServer() as running:
        yield running
