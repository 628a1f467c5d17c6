"""`list` and `kits`: what the manifest offers."""

from __future__ import annotations

import argparse

from weightkit.cli.common import EXIT_OK, Context, flags, print_json, print_table
from weightkit.folders import canonical_folder
from weightkit.manifest import WeightEntry
from weightkit.units import format_bytes, format_total

__all__ = ["configure_kits", "configure_list", "run_kits", "run_list"]


# ---- list -------------------------------------------------------------------------------------------


def configure_list(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--folder", help="only weights of this model folder (e.g. loras)")
    parser.add_argument("--kit", help="only weights of this kit (see `kits`)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run_list(args: argparse.Namespace, context: Context) -> int:
    store = context.store
    manifest = store.manifest
    entries: list[WeightEntry] = (
        manifest.kit_entries(args.kit) if args.kit else list(manifest.entries.values())
    )
    if args.folder:
        entries = [e for e in entries if e.folder == canonical_folder(args.folder)]
    if args.json:
        print_json([entry.to_json() for entry in entries])
        return EXIT_OK
    rows = [
        (entry.key, format_bytes(entry.size), entry.license or "unknown license", flags(entry))
        for entry in entries
    ]
    print_table(rows, right_aligned={1})
    total = format_total(entry.size for entry in entries)
    print(f"{len(entries)} weight{'s' if len(entries) != 1 else ''}, {total} in all.")
    return EXIT_OK


# ---- kits -------------------------------------------------------------------------------------------


def configure_kits(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run_kits(args: argparse.Namespace, context: Context) -> int:
    store = context.store
    manifest = store.manifest
    kits = []
    for kit in manifest.kits.values():
        entries = manifest.kit_entries(kit.name)
        kits.append((kit, [entry.size for entry in entries]))
    if args.json:
        print_json(
            [
                {
                    "name": kit.name,
                    "description": kit.description,
                    "weights": list(kit.weights),
                    "size": None if None in sizes else sum(s for s in sizes if s is not None),
                }
                for kit, sizes in kits
            ]
        )
        return EXIT_OK
    print_table(
        [
            (
                kit.name,
                f"{len(kit.weights)} file{'s' if len(kit.weights) != 1 else ''}",
                format_total(sizes),
                kit.description,
            )
            for kit, sizes in kits
        ],
        right_aligned={1, 2},
    )
    return EXIT_OK
