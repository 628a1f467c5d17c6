"""The quick reference quotes the benchmark figures the strategy document reports, not older ones."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"
RANGE = r"\d+(?:\.\d+)?-\d+(?:\.\d+)? (?:µs|ms)"


def figures(text: str, row: str) -> list[str]:
    (line,) = [line for line in text.splitlines() if line.startswith(f"| {row}")]
    return re.findall(RANGE, line)


def test_the_quick_reference_quotes_the_strategy_documents_check_figures():
    strategy = (DOCS / "WEIGHT_LOADING_STRATEGY.md").read_text(encoding="utf-8")
    quick = figures((DOCS / "WEIGHT_LOADING_QUICK_REF.md").read_text(encoding="utf-8"), "parse + extract")
    measured = [
        figures(strategy, "parse + extract + check |")[0],
        figures(strategy, "parse + extract + check, 500 nodes")[0],
        figures(strategy, "check, stat only")[0],
        figures(strategy, "check with verified records")[0],
    ]
    assert quick == measured
