"""`plan` and `nodes`: what a workflow needs, of weights and of custom node packs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nodekit.explain import (
    cannot_know_weights,
    class_rows,
    fetch_sentence,
    hidden_weight_lines,
    nodes_header,
    what_to_do,
)
from nodekit.required import NodesReport
from weightkit.check import CheckReport, missing_weights_error
from weightkit.cli.common import EXIT_NO, EXIT_OK, Context, flags, print_json, print_table, size_of
from weightkit.extract import WeightRef
from weightkit.manifest import WeightEntry
from weightkit.units import format_bytes, format_total
from weightkit.urlforms import display_url, normalise_weight_url

__all__ = ["configure_nodes", "configure_plan", "run_nodes", "run_plan"]


# ---- plan -------------------------------------------------------------------------------------------


def configure_plan(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("workflow", help="an API-format workflow JSON file ('-' reads standard input)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run_plan(args: argparse.Namespace, context: Context) -> int:
    store = context.store
    text = _read_workflow(args.workflow)
    nodes = context.nodes(text)
    refs = store.required(text)
    report = store.check_refs(refs, verified=True)
    fetch = (*report.to_fetch, *report.from_urls)
    fetch_sizes = [ref.entry.size if ref.entry is not None else None for ref in fetch]
    fetch_bytes = sum(size for size in fetch_sizes if size is not None)
    status = _statuses(report)
    unknowable = cannot_know_weights(nodes)
    if args.json:
        plan = {
            "weights": [_plan_json(ref, *status[ref]) for ref in refs],
            "fetch_count": len(fetch),
        }
        plan |= {"fetch_bytes": fetch_bytes, "weights_known": nodes.weights_known, "nodes": nodes.to_json()}
        print_json({**plan, "ok": not report.unfetchable and nodes.weights_known})
    else:
        _print_plan(refs, report, status, nodes, fetch_count=len(fetch))
        print(fetch_sentence(len(fetch), format_total(fetch_sizes), nodes))
    if report.unfetchable:
        cannot = CheckReport(missing=report.unfetchable)
        print(missing_weights_error(cannot, store.paths, store.manifest), file=sys.stderr)
    if unknowable and args.json:
        print(unknowable, file=sys.stderr)
    return EXIT_NO if report.unfetchable or unknowable else EXIT_OK


def _print_plan(
    refs: Sequence[WeightRef],
    report: CheckReport,
    status: dict[WeightRef, tuple[str, str, str]],
    nodes: NodesReport,
    *,
    fetch_count: int,
) -> None:
    print(
        f"The workflow needs {len(refs)} weight file{'s' if len(refs) != 1 else ''}"
        f"{'' if nodes.weights_known else ' that can be known'}: {len(report.present)} present, "
        f"{fetch_count} to fetch, {len(report.unfetchable)} missing that cannot be fetched, "
        f"{len(report.unplaced)} in an unknown folder."
    )
    rows = []
    for ref in refs:
        state, path, note = status[ref]
        where = f"node {ref.node_id} {ref.class_type}.{ref.input_name}"
        rows.append((state, _label(ref), size_of(ref), where, " ".join(filter(None, (path, note)))))
    print_table(rows, right_aligned={2})
    if nodes.needs:
        _print_nodes(nodes)
    for line in filter(None, (cannot_know_weights(nodes), *hidden_weight_lines(nodes))):
        print(line)


def _read_workflow(path: str) -> bytes:
    return sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()


def _statuses(report: CheckReport) -> dict[WeightRef, tuple[str, str, str]]:
    """ref → (status, path, note): present, refetch (wrong size or hash), fetch, missing, unknown."""
    status: dict[WeightRef, tuple[str, str, str]] = {}
    for found in report.present:
        status[found.ref] = ("present", str(found.path), "(verified)" if found.verified else "")
    for found in report.wrong_size:
        status[found.ref] = ("refetch", str(found.path), f"is {format_bytes(found.size)}, wrong size")
    for found in report.wrong_hash:
        status[found.ref] = ("refetch", str(found.path), "wrong sha256")
    for ref in report.missing:
        if ref.entry is not None:
            status[ref] = ("fetch", "", _entry_note(ref.entry))
        elif ref.url is not None:
            status[ref] = ("fetch", "", f"from {display_url(normalise_weight_url(ref.url))} (not verifiable)")
        else:
            status[ref] = ("missing", "", "not in the manifest: cannot be fetched")
    for ref in report.unplaced:
        status[ref] = ("unknown", "", "folder unknown: not checked")
    return status


def _entry_note(entry: WeightEntry) -> str:
    noted = flags(entry)
    return entry.key + (f" ({noted})" if noted else "")


def _label(ref: WeightRef) -> str:
    return f"{ref.folder}/{ref.name}" if ref.folder else ref.name


def _plan_json(ref: WeightRef, status: str, path: str, note: str) -> dict[str, Any]:
    return {
        "status": status,
        "name": ref.name,
        "folder": ref.folder,
        "node_id": ref.node_id,
        "class_type": ref.class_type,
        "input_name": ref.input_name,
        "manifest_key": ref.entry.key if ref.entry else None,
        "size": ref.entry.size if ref.entry else None,
        "path": path or None,
        "note": note or None,
    }


# ---- nodes ------------------------------------------------------------------------------------------


def configure_nodes(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("workflow", help="an API-format workflow JSON file ('-' reads standard input)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run_nodes(args: argparse.Namespace, context: Context) -> int:
    nodes = context.nodes(_read_workflow(args.workflow))
    if args.json:
        print_json(nodes.to_json())
    else:
        _print_nodes(nodes)
        for line in what_to_do(nodes):
            print(line)
    return EXIT_OK if nodes.weights_known and not nodes.not_installed else EXIT_NO


def _print_nodes(nodes: NodesReport) -> None:
    print(nodes_header(nodes))
    if not nodes.needs:
        return
    print_table([("class", "node", "pack", "lock", "installed"), *class_rows(nodes)])
