"""Typed errors for the predictor's inputs: each carries the fields a caller needs and reads as one
paragraph a user can act on.

Every error subclasses `InputError`; those caused by what the user gave also subclass `ValueError`.
URLs are printed without user name, password, query or fragment (weightkit's `display_url`, which
never raises): a user's URL may carry a token there, and messages reach logs.
"""

from __future__ import annotations

from typing import Literal

from weightkit.urlforms import display_url

__all__ = [
    "ALLOW_PRIVATE_URLS",
    "InputArchiveError",
    "InputDownloadError",
    "InputError",
    "InputFileError",
    "InputTooLargeError",
    "OutputOptionError",
    "RefusalKind",
    "URLRefusedError",
    "WorkflowSourceError",
]

# The setting that lets a deployment fetch from private addresses; named in refusals.
ALLOW_PRIVATE_URLS = "ALLOW_PRIVATE_URLS"

# What a refusal is about, which decides its advice: the URL's form, a cloud metadata service, or an
# address outside the public internet.
RefusalKind = Literal["form", "metadata", "address"]

_ADVICE: dict[str, str] = {
    "form": "Give a full http:// or https:// URL with a host name, a valid port, and no user name or "
    "password.",
    "metadata": (
        "Cloud metadata services hand out this machine's credentials, so they are reached only when "
        f"{ALLOW_PRIVATE_URLS}=true (everything); a list of networks in {ALLOW_PRIVATE_URLS} never "
        "opens them."
    ),
    "address": (
        "Inputs given as URLs are fetched only from public internet addresses. If this deployment should "
        f"reach such addresses, set {ALLOW_PRIVATE_URLS}=true (everything) or {ALLOW_PRIVATE_URLS} to a "
        "comma-separated list of networks such as 10.1.0.0/16."
    ),
}


class InputError(Exception):
    """Base class for every error raised while preparing a prediction's inputs or outputs."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class URLRefusedError(InputError, ValueError):
    """A URL that may not be fetched: a malformed one (`kind="form"`), a cloud metadata service
    (`"metadata"`), or a host on a private or special network (`"address"`); the kind picks the advice."""

    def __init__(
        self,
        url: str,
        reason: str,
        *,
        kind: RefusalKind,
        host: str | None = None,
        address: str | None = None,
    ) -> None:
        self.url = url
        self.reason = reason
        self.kind = kind
        self.host = host
        self.address = address
        where = ""
        if host and address and host != address:
            where = f" ({host} resolves to {address})"
        elif address or host:
            where = f" ({address or host})"
        super().__init__(f"Refused to fetch {display_url(url)}{where}: {reason}. {_ADVICE[kind]}")


class InputDownloadError(InputError, ValueError):
    """A URL given as input could not be fetched: no answer, an HTTP error status, or a broken transfer."""

    def __init__(self, url: str, problem: str, *, status: int | None = None) -> None:
        self.url = url
        self.problem = problem
        self.status = status
        super().__init__(
            f"Could not download {display_url(url)}: {problem}. Check that the URL is right and publicly "
            "reachable (open it in a browser), or upload the file instead."
        )


class InputTooLargeError(InputError, ValueError):
    """A download is larger than its limit; `size` is the announced size when the server gave one."""

    def __init__(self, url: str, *, limit: int, size: int | None, setting: str) -> None:
        self.url = url
        self.limit = limit
        self.size = size
        self.setting = setting
        told = f"it is {size:,} bytes" if size is not None else "it sent more than that"
        super().__init__(
            f"Refused to download {display_url(url)}: the limit is {limit:,} bytes and {told}. Use a smaller "
            f"file, or raise the limit with the setting {setting}."
        )


class WorkflowSourceError(InputError, ValueError):
    """The `workflow_json` input is a data URI or a document that cannot be decoded into text."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(
            f"Could not read workflow_json: {problem}. Give the workflow as JSON text, an http(s) URL of a "
            "JSON file, or a data URI such as data:application/json;base64,<base64 of the JSON>."
        )


class InputFileError(InputError, ValueError):
    """The `input_file` input is of a type that cannot be put into ComfyUI's input folder."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(
            f"Cannot use input_file {path}: {problem}. Give an image (png, jpg, webp, gif, ...), a video "
            "(mp4, mov, webm, mkv, avi), an audio file (wav, mp3, flac, ogg, m4a), or a zip or tar "
            "archive of such files."
        )


class InputArchiveError(InputError, ValueError):
    """An archive was refused as a whole: an unsafe member, or over a limit. Nothing was unpacked."""

    def __init__(self, archive: str, problem: str, *, member: str | None = None) -> None:
        self.archive = archive
        self.member = member
        self.problem = problem
        which = f"member {member!r} " if member is not None else ""
        super().__init__(
            f"Refused to unpack input_file {archive}: {which}{problem}. Nothing from it was put in the "
            "input folder. Make an archive of plain files and folders with relative names inside it."
        )


class OutputOptionError(InputError, ValueError):
    """An output option outside what the predictor supports."""

    def __init__(self, option: str, value: object, expected: str) -> None:
        self.option = option
        self.value = value
        self.expected = expected
        super().__init__(f"{option}={value!r} is not supported: expected {expected}.")
