"""How a request for a range can fail: retry it, or give this source up."""

from __future__ import annotations

import http.client

from weightkit.settings import Credential

__all__ = ["AuthError", "RangeNotSatisfiable", "RetryableError", "SourceError", "describe"]


class RetryableError(Exception):
    """A failure worth retrying on this source after a pause (`retry_after` when the server said)."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class SourceError(Exception):
    """This source will not deliver the file (404, refused, misbehaving): move to the next one."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RangeNotSatisfiable(SourceError):
    """416: the range starts at or past the end of the file; `total` is its size when the server said."""

    def __init__(self, reason: str, *, total: int | None) -> None:
        super().__init__(reason)
        self.total = total


class AuthError(SourceError):
    """401/403: `credential` is the one this origin takes (None if none), `sent` whether a token went."""

    def __init__(self, reason: str, *, credential: Credential | None, sent: bool) -> None:
        super().__init__(reason)
        self.credential = credential
        self.sent = sent


def describe(exc: BaseException) -> str:
    """A network exception as a short phrase for logs and errors."""
    if isinstance(exc, TimeoutError):
        return "no bytes within the stall timeout"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, http.client.IncompleteRead):
        return "connection closed mid-body"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
