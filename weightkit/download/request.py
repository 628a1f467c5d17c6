"""What to fetch (`FetchRequest`) and what happened (`FetchResult`, `FetchSummary`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from weightkit.manifest import WeightEntry

__all__ = ["FetchRequest", "FetchResult", "FetchSummary"]


@dataclass(frozen=True, kw_only=True)
class FetchRequest:
    """One file to place at `dest`, from `urls` in order (a configured mirror goes first).

    `size` and `sha256` are checked when known; without a sha256 the file's hash is computed and
    recorded, not compared. `hash_from` says who stated the sha256 (`manifest`, `huggingface`,
    `civitai`: what the verified record will say). `ask_host` (a manifest entry that leaves size and
    sha256 to Hugging Face) takes them from the host's answer before anything is written: the first
    Hugging Face URL that states both gives them, the bytes are verified against them like a manifest
    hash, and an answer without them refuses the file. `folder` and `name` fill the mirror template;
    `gated` says the host wants
    a token for it. A `.tar` source is unpacked and the weight taken from it, unless `unpack` is False
    (the archive itself is wanted, as for Cog's `weights`). `url_guard`, for URLs a user supplied, is
    called with every URL before it is requested, each redirect hop included: a `ValueError` from it
    refuses that source; an answer with `addresses` (the IP addresses it checked for the URL's host)
    pins the connection to one of exactly those, never a fresh DNS answer, with the Host header and
    TLS name still the URL's host. `send_credentials=False` (a URL nobody declared as a weight's
    source) sends no token to any host, not even to the origins tokens are configured for.
    """

    dest: Path
    urls: tuple[str, ...]
    size: int | None = None
    sha256: str | None = None
    hash_from: str = "manifest"
    ask_host: bool = False
    folder: str | None = None
    name: str | None = None
    gated: bool = False
    unpack: bool = True
    url_guard: Callable[[str], object] | None = field(default=None, compare=False)
    send_credentials: bool = True

    @classmethod
    def for_entry(cls, entry: WeightEntry, dest: Path | str) -> FetchRequest:
        """A manifest weight, to be placed at `dest` (normally `<weights_dir>/<folder>/<name>`)."""
        return cls(
            dest=Path(dest),
            urls=entry.urls,
            size=entry.size,
            sha256=entry.sha256,
            ask_host=entry.left_to_host,
            folder=entry.folder,
            name=entry.name,
            gated=entry.gated,
        )

    @classmethod
    def for_url(
        cls,
        url: str,
        dest: Path | str,
        *,
        sha256: str | None = None,
        hash_from: str = "manifest",
        ask_host: bool = False,
        unpack: bool = True,
        url_guard: Callable[[str], object] | None = None,
        send_credentials: bool = True,
    ) -> FetchRequest:
        """A file known only by its URL (a user's LoRA): size from the server, hash computed, or
        checked against `sha256` when one is known (`hash_from="civitai"` for the hash CivitAI's API
        states, see `weightkit.civitai`); `ask_host=True` takes both from Hugging Face's answer."""
        return cls(
            dest=Path(dest),
            urls=(url,),
            sha256=sha256,
            hash_from=hash_from,
            ask_host=ask_host,
            unpack=unpack,
            url_guard=url_guard,
            send_credentials=send_credentials,
        )

    @property
    def label(self) -> str:
        """How logs and errors name the file: `folder/name` for a manifest weight."""
        if self.folder and self.name:
            return f"{self.folder}/{self.name}"
        return self.name or self.dest.name


@dataclass(frozen=True, kw_only=True)
class FetchResult:
    """One file in place and verified. `present`: it already was (nothing fetched); `waited`: another
    process fetched it while this one waited. `fetched` counts bytes received now, `resumed` bytes
    reused from an interrupted earlier run. `hash_from` says who vouched for `sha256` (`computed`:
    nobody, it was only hashed; None: not known)."""

    name: str
    path: Path
    size: int
    sha256: str | None
    seconds: float
    hash_from: str | None = None
    fetched: int = 0
    resumed: int = 0
    source: str | None = None
    present: bool = False
    waited: bool = False

    @property
    def mb_per_s(self) -> float:
        return self.fetched / self.seconds / 1e6 if self.seconds > 0 else 0.0


@dataclass(frozen=True, kw_only=True)
class FetchSummary:
    """A batch: `files` in place, `bytes` received now, wall-clock `seconds`, how many were present,
    and the names of those that `failed`."""

    results: tuple[FetchResult, ...]
    seconds: float
    failed: tuple[str, ...] = ()

    @property
    def files(self) -> int:
        return len(self.results)

    @property
    def bytes(self) -> int:
        return sum(result.fetched for result in self.results)

    @property
    def present(self) -> int:
        return sum(1 for result in self.results if result.present or result.waited)

    @property
    def mb_per_s(self) -> float:
        return self.bytes / self.seconds / 1e6 if self.seconds > 0 else 0.0
