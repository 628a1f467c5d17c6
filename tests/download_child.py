"""One download in a process of its own, for tests that kill or race processes.

    python tests/download_child.py '{"dest": ..., "urls": [...], "size": ..., "sha256": ..., "settings": {},
                                     "pin": {"host.test": ["127.0.0.1"]}}'

`pin` gives a URL guard that answers, for each host named, the addresses to connect to. Prints the
`FetchResult` as one JSON line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.downloadkit import fast_settings
from weightkit.download import Downloader, FetchRequest


def main(spec: dict) -> None:
    pins = spec.get("pin")

    def guard(url: str) -> SimpleNamespace:
        return SimpleNamespace(addresses=tuple(pins[urlsplit(url).hostname]))

    request = FetchRequest(
        dest=Path(spec["dest"]),
        urls=tuple(spec["urls"]),
        size=spec.get("size"),
        sha256=spec.get("sha256"),
        url_guard=guard if pins else None,
    )
    result = Downloader(fast_settings(**spec.get("settings", {}))).fetch(request)
    print(json.dumps({k: v for k, v in vars(result).items() if k != "path"}), flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
