"""The `workflow_json` input as workflow text: JSON as given, a URL fetched, a data URI decoded, or the
default example when empty.

Only the source is handled here; whether the text is a workflow ComfyUI can run is for
`weightkit.workflow.parse_workflow` to say.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from pathlib import Path
from urllib.parse import unquote_to_bytes

from prediction.input_errors import WorkflowSourceError
from prediction.settings import InputSettings
from prediction.url_download import fetch_bytes
from prediction.workflow_urls import is_url
from weightkit.urlforms import display_url

__all__ = ["decode_data_uri", "workflow_text"]

log = logging.getLogger(__name__)

_DATA_URI = re.compile(r"data:(?P<header>[^,]*),(?P<data>.*)", re.IGNORECASE | re.DOTALL)


def workflow_text(value: str | None, *, default_path: Path, settings: InputSettings) -> str:
    """The workflow text `value` stands for.

    - empty or blank: the text of `default_path` (the bundled example);
    - `data:[<media type>][;base64],<data>`: the decoded data, any media type;
    - an http(s) URL: the document it serves, at most `settings.workflow_max_bytes`;
    - anything else: `value` itself, for the workflow parser to judge.

    Raises `WorkflowSourceError` (undecodable data URI, not UTF-8), `URLRefusedError`,
    `InputDownloadError`, `InputTooLargeError`, and `OSError` if `default_path` cannot be read.
    """
    text = (value or "").strip()
    if not text:
        log.info("No workflow given: running the default example %s", default_path)
        return default_path.read_text(encoding="utf-8")
    if text[:5].lower() == "data:":
        return _utf8(decode_data_uri(text), "the data URI's content")
    if is_url(text):
        log.info("Fetching the workflow from %s", display_url(text))
        fetched = fetch_bytes(
            text, settings=settings, max_bytes=settings.workflow_max_bytes, limit_setting="WORKFLOW_MAX_BYTES"
        )
        return _utf8(fetched.data, f"the document at {display_url(fetched.url)}")
    return value or ""


def decode_data_uri(uri: str) -> bytes:
    """The bytes of a `data:` URI (RFC 2397), base64 or percent-encoded; raises `WorkflowSourceError`."""
    match = _DATA_URI.fullmatch(uri.strip())
    if match is None:
        raise WorkflowSourceError("the data URI has no ',' between its header and its data")
    header, data = match["header"], match["data"]
    if header.rsplit(";", 1)[-1].strip().lower() != "base64":
        return unquote_to_bytes(data)
    packed = re.sub(r"\s+", "", unquote_to_bytes(data).decode("ascii", errors="replace"))
    alphabet = b"-_" if ("-" in packed or "_" in packed) else None
    try:
        return base64.b64decode(packed + "=" * (-len(packed) % 4), altchars=alphabet, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WorkflowSourceError(
            f"the data URI says base64 but its data is not valid base64 ({exc})"
        ) from exc


def _utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise WorkflowSourceError(
            f"{what} is not UTF-8 text (undecodable byte at position {exc.start}); JSON must be UTF-8"
        ) from exc
