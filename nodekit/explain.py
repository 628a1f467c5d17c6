"""A `NodesReport` in words, for `python -m weightkit nodes` and `plan`: a table row per class, what to do.

Kept apart from the command line so the predictor can say the same sentences.
"""

from __future__ import annotations

from nodekit.required import ClassNeed, NodesReport, how_to_add

__all__ = [
    "cannot_know_weights",
    "class_rows",
    "fetch_sentence",
    "hidden_weight_lines",
    "nodes_header",
    "what_to_do",
]


def nodes_header(report: NodesReport) -> str:
    """`Custom nodes: 3 node classes that ComfyUI lacks, from 2 known packs:` (or that there are none)."""
    if not report.needs:
        return "Custom nodes: none, the workflow uses only ComfyUI's own node classes."
    count = len(report.needs)
    packs = len({need.hint.name for need in report.needs if need.hint is not None})
    unknown = f" and {len(report.unknown)} of no known pack" if report.unknown else ""
    return (
        f"Custom nodes: {count} node class{'es' if count != 1 else ''} that ComfyUI lacks, from {packs} "
        f"known pack{'s' if packs != 1 else ''}{unknown}:"
    )


def fetch_sentence(count: int, size: str, report: NodesReport) -> str:
    """`Would fetch 2 files, 1.2 GB.`: never a bare count when some weights cannot be known."""
    at_least = "" if report.weights_known else "at least "
    themselves = " (and what the nodes above load themselves)" if report.hidden else ""
    return f"Would fetch {at_least}{count} file{'s' if count != 1 else ''}, {size}{themselves}."


def class_rows(report: NodesReport) -> list[tuple[str, str, str, str, str]]:
    """(class, nodes, pack, lock, installed) for each non-core class."""
    rows = []
    for need in report.needs:
        pack = need.hint.name if need.hint else "(no known pack)"
        lock = "in lock" if need.in_lock else "not in lock" if need.hint else "-"
        installed = need.install_state if report.checked_install else "(no custom_nodes/ here)"
        rows.append((need.class_type, _nodes(need), pack, lock, installed))
    return rows


def what_to_do(report: NodesReport) -> list[str]:
    """One line per pack to add or install, and per class no pack is known for."""
    lines = []
    for name, hint in sorted(report.not_in_lock.items()):
        lines.append(
            f"Add {name} ({hint.repository}) to custom_nodes.json: {how_to_add(hint)} in its packs, with its "
            f"loaders and weights (docs/CUSTOM_NODES.md), then `python -m nodekit install --only {name}`."
        )
    for need in report.unknown:
        lines.append(
            f"No known pack provides {need.class_type} (node {_nodes(need)}): check the spelling, or add "
            "the pack that does to custom_nodes.json with the class in its `classes`."
        )
    if report.not_installed:
        names = " ".join(report.not_installed)
        lines.append(
            f"Install the lock's packs this workflow needs: `python -m nodekit install --only {names}`."
        )
    return lines


def cannot_know_weights(report: NodesReport) -> str | None:
    """Why the workflow's weights cannot all be known, or None when they can."""
    if report.weights_known:
        return None
    causes = [
        f"{need.class_type} (node {_nodes(need)}) from {need.hint.name}, which custom_nodes.json lacks"
        for need in report.needs
        if need.hint is not None and not need.in_lock
    ]
    causes += [f"{need.class_type} (node {_nodes(need)}) from no known pack" for need in report.unknown]
    return (
        "Cannot know all of this workflow's weights: it uses "
        + "; ".join(causes)
        + ". Nothing says which of their inputs name weights or what they load when they run, so the count "
        "below covers only the rest. Add the packs to custom_nodes.json with their loaders and weights."
    )


def hidden_weight_lines(report: NodesReport) -> list[str]:
    """One line per class whose pack loads weights the workflow does not name (not counted)."""
    return [
        f"Node {_nodes(need)} ({need.class_type}): {need.hidden_weights}; those files are not counted here."
        for need in report.hidden
    ]


def _nodes(need: ClassNeed) -> str:
    return ", ".join(need.node_ids)
