"""Typed errors: each carries the fields a caller needs and reads as one paragraph a user can act on.

Every error subclasses `WeightkitError` and a stdlib category, so callers can catch either.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from typing import TYPE_CHECKING

from weightkit.urlforms import display_url

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


class SettingsError(WeightkitError, ValueError):
    """An environment variable holds a value weightkit cannot use: names the variable and the value."""

    def __init__(self, variable: str, value: str, expected: str) -> None:
        self.variable = variable
        self.value = value
        super().__init__(f"Environment variable {variable}={value!r} is not valid: expected {expected}.")


class DownloadError(WeightkitError, OSError):
    """A weight could not be downloaded from any source: says what each source did wrong.

    `attempts` pairs each URL tried (query strings removed) with why it failed. `expected_*` come from
    the manifest; `actual_*` describe the last bytes that arrived, when any did.
    """

    def __init__(
        self,
        name: str,
        *,
        dest: str,
        attempts: tuple[tuple[str, str], ...] = (),
        expected_size: int | None = None,
        actual_size: int | None = None,
        expected_sha256: str | None = None,
        actual_sha256: str | None = None,
        message: str | None = None,
    ) -> None:
        self.name = name
        self.dest = dest
        self.attempts = attempts
        self.expected_size = expected_size
        self.actual_size = actual_size
        self.expected_sha256 = expected_sha256
        self.actual_sha256 = actual_sha256
        if message is None:
            tried = "; ".join(f"{url}: {why.rstrip('.')}" for url, why in attempts) or "no source URL to try"
            expected = ""
            if expected_sha256 or expected_size is not None:
                size = f"{expected_size} bytes" if expected_size is not None else "a file"
                sha = f" with sha256 {expected_sha256}" if expected_sha256 else ""
                expected = f" Expected {size}{sha}."
            message = (
                f"Could not download {name} to {dest}: every source failed. {tried}.{expected} "
                "Nothing was left under the final name."
            )
        super().__init__(message)


class GatedWeightError(DownloadError, PermissionError):
    """The host wants a token for this weight and none is set: names the variable to set."""

    def __init__(
        self, name: str, *, dest: str, url: str, env_var: str, attempts: tuple[tuple[str, str], ...] = ()
    ) -> None:
        self.url = url
        self.env_var = env_var
        super().__init__(
            name,
            dest=dest,
            attempts=tuple(attempts),
            message=(
                f"{name} is gated: {url} needs an access token and {env_var} is not set. Set {env_var} "
                "to a token of an account that has accepted the model's license on its page, then retry."
            ),
        )


class HostFactsError(DownloadError):
    """A weight whose manifest entry leaves size and sha256 to Hugging Face, and no answer stated both:
    refused rather than installed unverified. `attempts` pairs each URL asked with what its answer
    lacked; nothing was downloaded."""

    def __init__(self, name: str, *, dest: str, attempts: tuple[tuple[str, str], ...]) -> None:
        tried = "; ".join(f"{url}: {why}" for url, why in attempts) or "no URL to ask"
        super().__init__(
            name,
            dest=dest,
            attempts=attempts,
            message=(
                f"Could not verify {name}: its manifest entry leaves its size and sha256 to Hugging Face, "
                f"and no answer stated them ({tried}). It was not downloaded, since nothing could vouch for "
                "its bytes. Hugging Face states both for every LFS file (the X-Linked-Size and X-Linked-Etag "
                "headers of its resolve redirect): check the URL, the network and WEIGHTS_HF_ENDPOINT, or "
                "give size and sha256 in the manifest entry."
            ),
        )


class CivitaiError(WeightkitError, OSError):
    """A CivitAI URL whose file CivitAI's API could not tell: says which URL and why."""

    def __init__(self, url: str, problem: str) -> None:
        self.url = url
        self.problem = problem
        super().__init__(
            f"Could not tell which file {display_url(url)} is: {problem}. Give a CivitAI model page "
            "(https://civitai.com/models/<id>), a version page (...?modelVersionId=<v>) or a download URL "
            "(https://civitai.com/api/download/models/<v>); check the network, WEIGHTS_CIVITAI_ENDPOINT, "
            "and CIVITAI_API_TOKEN for a model that needs a login."
        )


class AddWeightError(WeightkitError, OSError):
    """`python -m weightkit add` could not learn what the entry needs from the URL's host."""

    def __init__(self, url: str, problem: str, advice: str) -> None:
        self.url = url
        self.problem = problem
        super().__init__(
            f"Could not add {display_url(url)} to the manifest: {problem}. {advice} Nothing was written."
        )


class DiskSpaceError(WeightkitError, OSError):
    """Not enough free space to download: says how much is needed and how much is free, and where."""

    def __init__(self, path: str, *, needed: int, free: int, margin: int = 0) -> None:
        self.path = path
        self.needed = needed
        self.free = free
        self.margin = margin
        keep = f" (including {margin} bytes kept free, WEIGHTS_MIN_FREE_BYTES)" if margin else ""
        super().__init__(
            f"Not enough disk space to download into {path}: {needed} bytes needed{keep}, {free} bytes "
            "free. Free some space or point WEIGHTS_DIR at a larger volume. Nothing was placed under a "
            "final name; a download the disk filled up midway keeps what arrived in its part file for "
            "the next attempt to resume, unless the file's size was unknown."
        )
        self.errno = errno.ENOSPC


class UnsafeArchiveError(WeightkitError, ValueError):
    """An archive member would land outside its target folder, or is a link or device: names it."""

    def __init__(self, archive: str, member: str, reason: str) -> None:
        self.archive = archive
        self.member = member
        self.reason = reason
        super().__init__(
            f"Refusing to extract {archive}: member {member!r} {reason}. Nothing from the archive was "
            "extracted; archives may only hold regular files and folders inside their target folder."
        )


class UnknownWeightError(WeightkitError, LookupError):
    """A weight asked for by name that the manifest does not describe, so it cannot be fetched."""

    def __init__(self, name: str, suggestions: Sequence[str] = (), *, hint: str = "") -> None:
        self.name = name
        near = f" Did you mean {', '.join(suggestions)}?" if suggestions else ""
        hint = hint or (
            "Use `python -m weightkit list` to see known weights (write 'folder/name' when a name is in "
            "two folders), or describe it in your own manifest named by WEIGHTS_MANIFEST_EXTRA."
        )
        super().__init__(
            f"'{display_url(name)}' is not a weight of the manifest, so it cannot be fetched.{near} {hint}"
        )

    def __str__(self) -> str:  # LookupError would otherwise repr() the message
        return self.args[0]


class RepairError(WeightkitError, OSError):
    """A broken weight could not be replaced: says which file and why."""

    def __init__(self, folder: str, name: str, reason: str) -> None:
        self.folder = folder
        self.name = name
        super().__init__(f"Could not repair {folder}/{name}: {reason}")


class WeightURLError(WeightkitError, ValueError):
    """A weight fetched from a URL a workflow gave is not the kind of file its name says."""

    def __init__(self, url: str, name: str, problem: str) -> None:
        self.url = url
        self.name = name
        self.problem = problem
        super().__init__(
            f"The weight file downloaded from {display_url(url)} (saved as {name}) {problem}. Give a URL "
            "whose path ends with the file's real extension (.safetensors, .ckpt, .pt, ...), or a direct "
            "link to the file rather than to a web page."
        )


class ArchiveTooLargeError(WeightkitError, ValueError):
    """An archive holds more members or bytes than its limit: refused before anything was written."""

    def __init__(self, archive: str, member: str, *, limit: int, unit: str, setting: str) -> None:
        self.archive = archive
        self.member = member
        self.limit = limit
        self.unit = unit
        self.setting = setting
        raise_it = f"; raise the limit with {setting}" if setting else ""
        super().__init__(
            f"Refusing to extract {archive}: it holds more than {limit:,} {unit} (at member {member!r}), "
            f"the limit for archives{raise_it}. Nothing from the archive was extracted."
        )


class DownloadsFailedError(WeightkitError, OSError):
    """Some downloads of a batch failed after the others finished: `failures` maps name to its error."""

    def __init__(self, failures: dict[str, Exception], summary: object) -> None:
        self.failures = failures
        self.summary = summary
        listed = " ".join(f"[{name}] {error}" for name, error in failures.items())
        super().__init__(f"{len(failures)} download(s) failed. {listed}")


class PreloadError(WeightkitError, RuntimeError):
    """Setup could not make the configured weights present; a model without its weights should not start."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(
            f"Setup could not preload the weights it was asked for: {cause} Fix the setting "
            "(BASE_MODEL_KIT, PRELOAD_WORKFLOW, PRELOAD_WEIGHTS) or the network, or set "
            "PRELOAD_BEST_EFFORT=true to start anyway and fetch weights when a prediction needs them."
        )
