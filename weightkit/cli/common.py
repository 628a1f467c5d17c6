"""What every subcommand shares: its context (the store and the custom node lock), exit codes, printing."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

from nodekit.classes import PackIndex
from nodekit.lock import Lock
from nodekit.required import NodesReport, required_packs
from weightkit.extract import WeightRef
from weightkit.manifest import WeightEntry
from weightkit.store import WeightStore
from weightkit.units import format_bytes

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_NO",
    "EXIT_OK",
    "Command",
    "Context",
    "flags",
    "left_to_host",
    "print_json",
    "print_table",
    "size_of",
]

EXIT_OK, EXIT_NO, EXIT_BAD_INPUT = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class Context:
    """What a command works with: the weights (manifest merged with the lock's) and the custom node lock."""

    store: WeightStore
    lock: Lock

    @property
    def custom_nodes_dir(self) -> Path:
        return self.store.settings.comfyui_path / "custom_nodes"

    def nodes(self, workflow: bytes) -> NodesReport:
        return required_packs(workflow, PackIndex(self.lock), custom_nodes_dir=self.custom_nodes_dir)


@dataclasses.dataclass(frozen=True)
class Command:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, Context], int]


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def print_table(rows: Sequence[Sequence[str]], *, right_aligned: Collection[int] = ()) -> None:
    if not rows:
        return
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in right_aligned else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        print("  ".join(cells).rstrip())


def left_to_host(ref: WeightRef) -> bool:
    return ref.entry is not None and ref.entry.left_to_host


def flags(entry: WeightEntry) -> str:
    return ", ".join(
        flag for flag, on in (("gated", entry.gated), ("non-commercial", entry.non_commercial)) if on
    )


def size_of(ref: WeightRef) -> str:
    return format_bytes(ref.entry.size) if ref.entry is not None else "?"
