"""Typed errors: each carries the fields a caller needs and reads as one paragraph a user can act on.

Every error subclasses `WeightkitError` and a stdlib category, so callers can catch either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from weightkit.check import FoundWeight
    from weightkit.extract import WeightRef


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


class WorkflowError(WeightkitError, ValueError):
    """A workflow that is not a runnable API-format prompt.

    Carries the node and input at fault when there is one, and the line and column of a JSON syntax error.
    """

    def __init__(
        self,
        message: str,
        *,
        node_id: str | None = None,
        class_type: str | None = None,
        input_name: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.node_id = node_id
        self.class_type = class_type
        self.input_name = input_name
        self.line = line
        self.column = column
        super().__init__(message)


class UnsafeWeightNameError(WorkflowError):
    """A weight name that would leave its model folder: absolute, with `..`, a backslash or a drive.

    Refused before any file is touched, because a workflow comes from an untrusted caller.
    """

    def __init__(self, *, node_id: str, class_type: str, input_name: str, value: str) -> None:
        self.value = value
        super().__init__(
            f"Node {node_id} ({class_type}) input '{input_name}' names the weight {value!r}, which "
            f"{_unsafe_reason(value)}. A weight name must be a relative path inside its model folder, such "
            "as 'model.safetensors' or 'sub/model.safetensors'; this one is refused as a path traversal "
            "attempt.",
            node_id=node_id,
            class_type=class_type,
            input_name=input_name,
        )


def _unsafe_reason(value: str) -> str:
    if "\\" in value:
        return "contains a backslash (write folders with '/')"
    if value.startswith("/") or (len(value) > 1 and value[1] == ":"):
        return "is an absolute path"
    if ".." in value.split("/"):
        return "climbs out of its folder with '..'"
    if "\x00" in value:
        return "contains a NUL character"
    if value != value.strip():
        return "starts or ends with whitespace"
    return "has an empty or '.' path component"


class MissingWeightsError(WeightkitError, FileNotFoundError):
    """Weights a workflow needs that are not usable here: missing, or present but not the manifest's file.

    `missing` holds the `WeightRef`s not found; `wrong_size` the `FoundWeight`s whose size differs from
    the manifest, `wrong_hash` those whose recorded sha256 does. The message is one paragraph: each file,
    who asked for it, whether it can be fetched, near names, and how to preload it.
    """

    def __init__(
        self,
        message: str,
        *,
        missing: tuple[WeightRef, ...] = (),
        wrong_size: tuple[FoundWeight, ...] = (),
        wrong_hash: tuple[FoundWeight, ...] = (),
    ) -> None:
        self.missing = missing
        self.wrong_size = wrong_size
        self.wrong_hash = wrong_hash
        super().__init__(message)


class ExtraModelPathsError(WeightkitError, ValueError):
    """An `extra_model_paths.yaml` that ComfyUI could not load either: names the file and section."""

    def __init__(self, message: str, *, path: str, section: str | None = None) -> None:
        self.path = path
        self.section = section
        where = f"{path}, section '{section}'" if section is not None else path
        super().__init__(
            f"Invalid extra model paths config {where}: {message}. ComfyUI's format is top-level sections, "
            "each with optional 'base_path' and 'is_default', and 'folder_type: path' entries (several paths "
            "as a multi-line string)."
        )
