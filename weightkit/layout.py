"""What weightkit keeps beside the weights, in `<WEIGHTS_DIR>/.weightkit/`, named in this one place.

- `verified/`: records of files whose sha256 was checked (`verified.VerifiedRecords`);
- `quarantine/<folder>/`: weights ComfyUI could not load, moved out of every searched folder;
- `staging/`: archives being unpacked, one fresh folder per unpack, on the weights volume so that a
  finished file is moved into place by a rename;
- `user-weights-<key>.tar`: Cog's `weights` archive as downloaded, named by its URL, so the next cold
  start with the same URL does not fetch it again.

Part files and lock files of downloads live beside their destination instead (see `download/`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["StateDir"]


@dataclass(frozen=True)
class StateDir:
    """The `.weightkit/` folder of one weights directory; creates nothing."""

    weights_dir: Path

    @property
    def root(self) -> Path:
        return self.weights_dir / ".weightkit"

    @property
    def records(self) -> Path:
        return self.root / "verified"

    @property
    def staging(self) -> Path:
        return self.root / "staging"

    def quarantine(self, folder: str) -> Path:
        return self.root / "quarantine" / folder

    def user_weights_archive(self, url: str) -> Path:
        key = hashlib.sha256(url.encode()).hexdigest()[:16]
        return self.root / f"user-weights-{key}.tar"
