"""A real `WeightStore` whose manifest describes files served by a real local HTTP server.

with FaultServer() as server:
    weights = ServedWeights(server, tmp_path / "weights")
    weights.add("upscale_models", "x2.safetensors", good_bytes)                 # served as described
    weights.add("upscale_models", "bad.safetensors", good, served=broken)    # described good, serves bad
    store = weights.store()
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

from tests.faultserver import FaultServer
from weightkit.manifest import Manifest, WeightEntry
from weightkit.settings import DownloadSettings, WeightSettings
from weightkit.store import WeightStore


class ServedWeights:
    def __init__(self, server: FaultServer, weights_dir: Path) -> None:
        self.server = server
        self.weights_dir = weights_dir
        self.entries: list[WeightEntry] = []

    def add(
        self, folder: str, name: str, data: bytes, *, served: bytes | None = None, serve: bool = True
    ) -> None:
        """Describe `folder/name` as `data` and serve `served` (default: `data`) for it; with
        `serve=False` nothing is served (the server answers 404)."""
        url_path = f"/{folder}/{name}"
        if serve:
            self.server.serve(url_path, data if served is None else served)
        self.entries.append(
            WeightEntry(
                name=name,
                folder=folder,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                urls=(self.server.url(url_path),),
                license="mit",
                non_commercial=False,
                gated=False,
            )
        )

    def manifest(self) -> Manifest:
        return Manifest.build(self.entries, [])

    def store(self, settings: WeightSettings | None = None, **changes) -> WeightStore:
        base = settings or WeightSettings()
        download = DownloadSettings(retries=0, backoff=0.01, stall_timeout=5.0, progress_interval=60.0)
        settings = replace(base, weights_dir=self.weights_dir, download=download, **changes)
        return WeightStore(settings, manifest=self.manifest())
