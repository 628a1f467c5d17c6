"""Which node classes are ComfyUI's own, and which custom node pack provides any other class.

Two data files in `nodekit/data/`, rebuilt by `scripts/build_node_index.py`:

- `core_classes.json`: the classes of the pinned ComfyUI (its recorded `/object_info`, plus the audio
  and API classes its source registers that the recording lacks);
- `class_index.json`: ComfyUI-Manager's extension-node-map (2,031 repositories, March 2025) as a compact
  repository → classes index, without ComfyUI's own classes, at most three candidate packs per class
  (2,020 repositories keep classes), plus the name patterns 21 packs declare instead of lists.

`PackIndex(lock).pack_for(class_type)` answers with a `PackHint`, preferring the lock's packs: a pack
that lists the class in its `classes`, then a lock pack among the index's candidates (a pack's
`supersedes` URLs count as its own), then the index's first candidate.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from nodekit.lock import Lock, Pack
from nodekit.lockparse import repository_key

__all__ = ["IndexInfo", "PackHint", "PackIndex", "core_classes", "index_info"]

_GITHUB = "https://github.com/"


@dataclass(frozen=True)
class PackHint:
    """The pack that provides a class: its directory name, repository, and the lock's pack if it has one."""

    name: str
    repository: str
    pack: Pack | None = None

    @property
    def in_lock(self) -> bool:
        return self.pack is not None


@dataclass(frozen=True)
class IndexInfo:
    """Where the class → pack knowledge comes from, for messages and `--help`."""

    source: str
    date: str
    comfyui_commit: str


@cache
def _data(name: str) -> Any:
    return json.loads(resources.files("nodekit").joinpath("data", name).read_text(encoding="utf-8"))


@cache
def core_classes() -> frozenset[str]:
    """ComfyUI's own node classes at the pinned commit (`index_info().comfyui_commit`)."""
    return frozenset(_data("core_classes.json")["classes"])


def index_info() -> IndexInfo:
    index = _data("class_index.json")
    return IndexInfo(
        source=index["source"],
        date=index["date"],
        comfyui_commit=_data("core_classes.json")["comfyui_commit"],
    )


@cache
def _candidates() -> tuple[dict[str, tuple[str, ...]], tuple[tuple[re.Pattern[str], str], ...]]:
    """class → repository URLs, best first (a pack's preemptions, then the map's order); patterns."""
    index = _data("class_index.json")
    found: dict[str, list[str]] = {}
    for repo, classes in index["packs"].items():
        for class_type in classes:
            found.setdefault(class_type, []).append(_url(repo))
    for repo, classes in index["preemptions"].items():
        for class_type in classes:
            urls = found.get(class_type)
            if urls and _url(repo) in urls:
                urls.remove(_url(repo))
                urls.insert(0, _url(repo))
    patterns = tuple((re.compile(regex), _url(repo)) for regex, repo in index["patterns"])
    return {k: tuple(v) for k, v in found.items()}, patterns


def _url(repo: str) -> str:
    return repo if "://" in repo else _GITHUB + repo


def _name_of(url: str) -> str:
    """The directory a repository clones into: its last path component without `.git`."""
    return url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")


class PackIndex:
    """Class → pack answers for one lock. Cheap to build; the index data is read once per process."""

    def __init__(self, lock: Lock) -> None:
        self.lock = lock
        self._by_class: dict[str, Pack] = {}
        self._by_repo: dict[str, Pack] = {}
        for pack in lock.packs:
            for class_type in pack.classes:
                self._by_class.setdefault(class_type, pack)
            for url in (pack.repository, *pack.supersedes):
                self._by_repo[repository_key(url)] = pack

    def is_core(self, class_type: str) -> bool:
        return class_type in core_classes()

    def candidates(self, class_type: str) -> tuple[str, ...]:
        """Repositories that provide `class_type` by the index: listed ones, then name patterns."""
        listed, patterns = _candidates()
        urls = list(listed.get(class_type, ()))
        urls += [url for pattern, url in patterns if pattern.search(class_type) and url not in urls]
        return tuple(urls)

    def pack_for(self, class_type: str) -> PackHint | None:
        """The pack providing `class_type`, the lock's first; None for a core class or an unknown one."""
        if self.is_core(class_type):
            return None
        pack = self._by_class.get(class_type)
        if pack is not None:
            return _hint(pack)
        urls = self.candidates(class_type)
        for url in urls:
            pack = self._by_repo.get(repository_key(url))
            if pack is not None:
                return _hint(pack)
        return PackHint(name=_name_of(urls[0]), repository=urls[0]) if urls else None


def _hint(pack: Pack) -> PackHint:
    return PackHint(name=pack.name, repository=pack.repository, pack=pack)
