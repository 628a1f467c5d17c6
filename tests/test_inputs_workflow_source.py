"""workflow_json as users give it: JSON text, a URL, a data URI, or nothing (the default example)."""

from __future__ import annotations

import base64
import ipaddress
import json
from pathlib import Path
from urllib.parse import quote

import pytest

from prediction.input_errors import (
    InputDownloadError,
    InputTooLargeError,
    URLRefusedError,
    WorkflowSourceError,
)
from prediction.input_settings import InputSettings
from prediction.workflow_source import decode_data_uri, workflow_text
from tests.inputs_http import LocalServer, Route

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EXAMPLE = ROOT / "examples" / "sd15_txt2img.json"
WORKFLOW = json.dumps({"1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64}}})
ALLOWED = InputSettings(
    download_timeout=5, workflow_max_bytes=10_000, allowed_networks=(ipaddress.ip_network("127.0.0.1/32"),)
)


def text(value: str | None, settings: InputSettings = ALLOWED) -> str:
    return workflow_text(value, default_path=DEFAULT_EXAMPLE, settings=settings)


@pytest.mark.parametrize("value", [None, "", "   \n"])
def test_empty_gives_default_example(value: str | None) -> None:
    assert text(value) == DEFAULT_EXAMPLE.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "value", [WORKFLOW, '{"1": {"class_type": ', "not json at all", '{"nodes": [], "links": []}']
)
def test_text_passes_through_for_the_parser_to_judge(value: str) -> None:
    assert text(value) == value


@pytest.mark.parametrize(
    "uri",
    [
        "data:application/json;base64," + base64.b64encode(WORKFLOW.encode()).decode(),
        "data:;base64," + base64.b64encode(WORKFLOW.encode()).decode().rstrip("="),
        "data:text/plain;charset=utf-8;base64," + base64.urlsafe_b64encode(WORKFLOW.encode()).decode(),
        "DATA:application/json;BASE64," + quote(base64.b64encode(WORKFLOW.encode()).decode()),
        "data:application/json;base64,\n" + "\n".join(base64.encodebytes(WORKFLOW.encode()).decode().split()),
        "data:application/json," + quote(WORKFLOW),
        "data:," + WORKFLOW,
        "data:application/json;base64," + base64.b64encode(b"\xef\xbb\xbf" + WORKFLOW.encode()).decode(),
    ],
)
def test_data_uri_decoded(uri: str) -> None:
    assert text(uri) == WORKFLOW


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("data:application/json;base64,@@@not base64!!", "not valid base64"),
        ("data:application/json;base64,abcde", "not valid base64"),
        ("data:application/json;base64", "no ','"),
        ("data:application/json;base64," + base64.b64encode(b"\xff\xfe{}").decode(), "not UTF-8"),
    ],
)
def test_data_uri_errors(uri: str, problem: str) -> None:
    with pytest.raises(WorkflowSourceError, match=problem) as caught:
        text(uri)
    assert isinstance(caught.value, ValueError)
    assert "data:application/json;base64" in str(caught.value)  # says what to give instead


def test_decode_data_uri_binary() -> None:
    assert decode_data_uri("data:image/png;base64,iVBORw0KGgo=") == b"\x89PNG\r\n\x1a\n"


def test_url_fetched() -> None:
    with LocalServer() as server:
        server.routes["/wf.json"] = Route(WORKFLOW.encode(), headers={"Content-Type": "application/json"})
        assert text(server.url("/wf.json")) == WORKFLOW


def test_url_redirect_followed() -> None:
    with LocalServer() as server:
        server.routes["/old.json"] = Route(status=301, headers={"Location": "/wf.json"})
        server.routes["/wf.json"] = Route(WORKFLOW.encode())
        assert text(server.url("/old.json")) == WORKFLOW


def test_url_error_status_named() -> None:
    with LocalServer() as server, pytest.raises(InputDownloadError, match="HTTP 404") as caught:
        text(server.url("/nope.json"))
    assert caught.value.status == 404


def test_url_over_workflow_limit_refused() -> None:
    with LocalServer() as server:
        server.routes["/huge.json"] = Route(b"{" + b" " * 20_000 + b"}")
        with pytest.raises(InputTooLargeError, match="WORKFLOW_MAX_BYTES"):
            text(server.url("/huge.json"))


def test_url_not_utf8_refused() -> None:
    with LocalServer() as server:
        server.routes["/latin1.json"] = Route('{"t": "café"}'.encode("latin-1"))
        with pytest.raises(WorkflowSourceError, match="not UTF-8"):
            text(server.url("/latin1.json"))


def test_url_at_metadata_address_refused() -> None:
    with pytest.raises(URLRefusedError, match=r"169\.254\.169\.254"):
        text("http://169.254.169.254/latest/user-data", InputSettings())


def test_url_on_loopback_refused_by_default() -> None:
    with LocalServer() as server:
        server.routes["/wf.json"] = Route(WORKFLOW.encode())
        with pytest.raises(URLRefusedError):
            text(server.url("/wf.json"), InputSettings())
        assert server.requests == []
