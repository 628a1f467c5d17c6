"""One download in a process of its own, for tests that kill or race processes.

    python tests/download_child.py '{"dest": ..., "urls": [...], "size": ..., "sha256": ..., "settings": {}}'

Prints the `FetchResult` as one JSON line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.downloadkit import fast_settings
from weightkit.download import Downloader, FetchRequest


def main(spec: dict) -> None:
    request = FetchRequest(
        dest=Path(spec["dest"]), urls=tuple(spec["urls"]), size=spec.get("size"), sha256=spec.get("sha256")
    )
    result = Downloader(fast_settings(**spec.get("settings", {}))).fetch(request)
    print(json.dumps({k: v for k, v in vars(result).items() if k != "path"}), flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
