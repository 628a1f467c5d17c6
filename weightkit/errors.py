"""Typed errors: each carries the fields a caller needs and reads as one paragraph a user can act on.

Every error subclasses `WeightkitError` and a stdlib category, so callers can catch either.
"""

from __future__ import annotations


class WeightkitError(Exception):
    """Base class for every error raised by weightkit."""


class ManifestError(WeightkitError, ValueError):
    """A manifest file is malformed: names the file, the entry and the field that is wrong."""

    def __init__(
        self, message: str, *, path: str | None = None, entry: str | None = None, field: str | None = None
    ) -> None:
        self.path = path
        self.entry = entry
        self.field = field
        where = " ".join(
            part
            for part in (
                f"in {path}" if path else "",
                f"entry {entry}" if entry else "",
                f"field '{field}'" if field else "",
            )
            if part
        )
        super().__init__(f"Invalid weights manifest{' ' + where if where else ''}: {message}")


class UnknownKitError(WeightkitError, LookupError):
    """A kit name that the manifest does not define."""

    def __init__(self, kit: str, known: list[str]) -> None:
        self.kit = kit
        self.known = known
        super().__init__(
            f"Unknown model kit '{kit}'. Known kits: {', '.join(known)}. "
            "Set BASE_MODEL_KIT to one of these (comma-separated for several), or add the kit to "
            "weights_manifest.json or to your own manifest named by WEIGHTS_MANIFEST_EXTRA."
        )

    def __str__(self) -> str:  # LookupError would otherwise repr() the message
        return self.args[0]
