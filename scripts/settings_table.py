#!/usr/bin/env python3
"""Print every environment variable the project reads, with its default, as the README's Markdown table.

Each settings class documents its variables in a table in its docstring; this gathers them, so the README
is generated from the code that reads the variables (tests/test_readme.py checks that it is current).

    python scripts/settings_table.py            # print the table
    python scripts/settings_table.py --write    # rewrite the table in README.md
"""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from comfyrun.settings import RuntimeSettings  # noqa: E402
from nodekit.settings import NodeSettings  # noqa: E402
from prediction.settings import InputSettings, PredictorSettings  # noqa: E402
from weightkit.settings import DownloadSettings, WeightSettings  # noqa: E402

SECTIONS = [
    ("Preloading and predictions", PredictorSettings),
    ("Weights: where they live", WeightSettings),
    ("Weights: downloading", DownloadSettings),
    ("ComfyUI", RuntimeSettings),
    ("Custom nodes", NodeSettings),
    ("Inputs given by URL or archive", InputSettings),
]
START, END = "<!-- settings:start -->", "<!-- settings:end -->"
_ROW = re.compile(r"^\s*\|\s*`[^|]+\|.*\|\s*$")


def table() -> str:
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for title, settings in SECTIONS:
        lines.append(f"| **{title}** | | |")
        lines += [row.strip() for row in (inspect.getdoc(settings) or "").splitlines() if _ROW.match(row)]
    return "\n".join(lines)


def rewrite(readme: str) -> str:
    before, _, rest = readme.partition(START)
    _, _, after = rest.partition(END)
    return f"{before}{START}\n{table()}\n{END}{after}"


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        path = ROOT / "README.md"
        path.write_text(rewrite(path.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        print(table())
