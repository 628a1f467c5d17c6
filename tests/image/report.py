"""Figures the image test measured, per base variant; printed at the end of the session (conftest.py)."""

from __future__ import annotations

from typing import Any

REPORT: dict[str, dict[str, Any]] = {}
