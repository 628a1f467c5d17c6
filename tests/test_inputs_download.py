"""Downloads into the input folder, URL inputs of a workflow, and weights given by URL."""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path

import pytest

from prediction.input_errors import InputDownloadError, InputTooLargeError, URLRefusedError
from prediction.settings import InputSettings
from prediction.url_download import download_to_folder
from prediction.url_inputs import download_url_inputs
from tests.faultserver import FaultServer
from tests.inputs_http import LocalServer, Route
from weightkit.loaders import builtin_loader_map
from weightkit.urlforms import safe_file_name

ALLOWED = InputSettings(
    download_timeout=5, download_max_bytes=1000, allowed_networks=(ipaddress.ip_network("127.0.0.1/32"),)
)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40


@pytest.fixture
def server():
    with LocalServer() as running:
        yield running


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


# --- download_to_folder -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "headers", "expected"),
    [
        ("/images/cat.png", {}, "cat.png"),
        ("/images/my%20cat%20%282%29.png?sig=1", {}, "my_cat_2_.png"),
        ("/a%2F..%2F..%2Fevil.png", {}, "evil.png"),
        ("/dl", {"Content-Disposition": 'attachment; filename="photo.jpg"'}, "photo.jpg"),
        ("/dl", {"Content-Disposition": "attachment; filename*=UTF-8''caf%C3%A9.png"}, "café.png"),
        ("/dl", {"Content-Disposition": 'attachment; filename="../../etc/passwd"'}, "passwd"),
        ("/dl", {"Content-Disposition": 'attachment; filename=".bashrc"'}, "bashrc"),
        ("/", {"Content-Type": "image/png"}, "download.png"),
        ("/api/download/123", {"Content-Type": "application/octet-stream"}, "123"),
    ],
)
def test_download_names_file_safely(server, tmp_path: Path, path: str, headers: dict, expected: str) -> None:
    server.routes[path.split("?")[0]] = Route(PNG, headers=headers)
    saved = download_to_folder(server.url(path), tmp_path, settings=ALLOWED)
    assert saved == tmp_path / expected
    assert saved.read_bytes() == PNG
    assert listing(tmp_path) == [expected]


def test_download_takes_a_free_name_when_taken(server, tmp_path: Path) -> None:
    (tmp_path / "cat.png").write_bytes(b"older")
    (tmp_path / "cat_1.png").write_bytes(b"old")
    server.routes["/cat.png"] = Route(PNG)
    saved = download_to_folder(server.url("/cat.png"), tmp_path, settings=ALLOWED)
    assert saved.name == "cat_2.png" and saved.read_bytes() == PNG
    assert (tmp_path / "cat.png").read_bytes() == b"older"


def test_download_announced_over_limit_refused_with_nothing_left(server, tmp_path: Path) -> None:
    server.routes["/big.png"] = Route(b"x" * 1001)
    with pytest.raises(InputTooLargeError) as caught:
        download_to_folder(server.url("/big.png"), tmp_path, settings=ALLOWED)
    assert caught.value.size == 1001 and caught.value.limit == 1000
    assert "INPUT_DOWNLOAD_MAX_BYTES" in str(caught.value)
    assert listing(tmp_path) == []


def test_download_streamed_over_limit_stopped_with_nothing_left(server, tmp_path: Path) -> None:
    server.routes["/big.png"] = Route(b"x" * 5000, length=False)
    with pytest.raises(InputTooLargeError) as caught:
        download_to_folder(server.url("/big.png"), tmp_path, settings=ALLOWED)
    assert caught.value.size is None
    assert listing(tmp_path) == []


def test_download_exactly_at_limit_is_kept(server, tmp_path: Path) -> None:
    server.routes["/edge.bin"] = Route(b"y" * 1000, length=False)
    saved = download_to_folder(server.url("/edge.bin"), tmp_path, settings=ALLOWED)
    assert saved.stat().st_size == 1000


def test_download_cut_short_is_an_error_with_nothing_left(server, tmp_path: Path) -> None:
    server.routes["/short.png"] = Route(b"z" * 10, announce=500)
    with pytest.raises(
        InputDownloadError,
        match=r"broke after 10 bytes \(connection closed with 490 bytes of the body to come",
    ):
        download_to_folder(server.url("/short.png"), tmp_path, settings=ALLOWED)
    assert listing(tmp_path) == []


def test_download_http_error_status_is_named(server, tmp_path: Path) -> None:
    with pytest.raises(InputDownloadError, match="HTTP 404") as caught:
        download_to_folder(server.url("/missing.png"), tmp_path, settings=ALLOWED)
    assert caught.value.status == 404
    assert listing(tmp_path) == []


def test_download_stalled_server_times_out_with_nothing_left(server, tmp_path: Path) -> None:
    server.routes["/slow.png"] = Route(b"never", stall=True)
    settings = InputSettings(download_timeout=0.2, allowed_networks=ALLOWED.allowed_networks)
    with pytest.raises(InputDownloadError, match="no bytes within the stall timeout"):
        download_to_folder(server.url("/slow.png"), tmp_path, settings=settings)
    assert listing(tmp_path) == []


def test_download_from_loopback_without_permission_refused(server, tmp_path: Path) -> None:
    server.routes["/cat.png"] = Route(PNG)
    with pytest.raises(URLRefusedError):
        download_to_folder(server.url("/cat.png"), tmp_path, settings=InputSettings())
    assert server.requests == [] and listing(tmp_path) == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("a/b\\c.png", "c.png"), ("..", ""), ("...png", "png"), ("x" * 300 + ".png", "x" * 116 + ".png")],
)
def test_safe_file_name(raw: str, expected: str) -> None:
    assert safe_file_name(raw) == expected


# --- URL inputs of a workflow -----------------------------------------------------------------------


def test_url_inputs_downloaded_once_and_rewritten_weights_left(server, tmp_path: Path) -> None:
    server.routes["/cat.png"] = Route(PNG)
    url = server.url("/cat.png")
    workflow = {
        "1": {"class_type": "LoadImage", "inputs": {"image": url}},
        "2": {"class_type": "LoadImageMask", "inputs": {"image": f"  {url} ", "channel": "alpha"}},
        "3": {
            "class_type": "LoraLoader",
            "inputs": {"lora_name": server.url("/lora.safetensors"), "model": ["4", 0]},
        },
        "5": {"class_type": "CLIPTextEncode", "inputs": {"text": f"like {url} but blue"}},
    }
    original = json.loads(json.dumps(workflow))
    rewritten, downloaded = download_url_inputs(
        workflow, tmp_path, settings=ALLOWED, loaders=builtin_loader_map()
    )
    assert rewritten["1"]["inputs"]["image"] == "cat.png"
    assert rewritten["2"]["inputs"]["image"] == "cat.png"
    assert rewritten["3"]["inputs"] == original["3"]["inputs"]
    assert rewritten["5"]["inputs"] == original["5"]["inputs"]
    assert workflow == original
    assert [(d.node_id, d.input_name, d.name) for d in downloaded] == [
        ("1", "image", "cat.png"),
        ("2", "image", "cat.png"),
    ]
    assert [r.path for r in server.requests] == ["/cat.png"]
    assert listing(tmp_path) == ["cat.png"]


def test_url_input_at_metadata_address_refused(tmp_path: Path) -> None:
    workflow = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "http://169.254.169.254/latest/meta-data/"}}
    }
    with pytest.raises(URLRefusedError, match="metadata"):
        download_url_inputs(workflow, tmp_path, settings=InputSettings(), loaders=builtin_loader_map())


# --- weights given by URL ---------------------------------------------------------------------------


def test_a_trickling_input_url_is_given_up_by_the_minimum_rate_with_nothing_left(tmp_path: Path) -> None:
    settings = InputSettings(
        download_timeout=5,
        download_min_rate=20_000,
        min_rate_window=0.5,
        allowed_networks=ALLOWED.allowed_networks,
    )
    with FaultServer() as trickle:
        trickle.serve("/slow.png", b"\x89PNG" + bytes(200_000), rate=2_000)
        with pytest.raises(InputDownloadError, match="transfer broke after") as caught:
            download_to_folder(trickle.url("/slow.png"), tmp_path, settings=settings)
    assert "20 kB/s" in str(caught.value)
    assert listing(tmp_path) == []


def test_an_input_url_that_outlasts_its_deadline_is_given_up_with_nothing_left(tmp_path: Path) -> None:
    settings = InputSettings(
        download_timeout=5,
        download_deadline=0.5,
        download_min_rate=0,
        allowed_networks=ALLOWED.allowed_networks,
    )
    with FaultServer() as slow:
        slow.serve("/big.png", b"\x89PNG" + bytes(1_000_000), rate=200_000)
        with pytest.raises(InputDownloadError, match="INPUT_DOWNLOAD_DEADLINE"):
            download_to_folder(slow.url("/big.png"), tmp_path, settings=settings)
    assert listing(tmp_path) == []


def test_url_input_with_a_bracketed_name_host_is_refused_with_the_paragraph(tmp_path: Path) -> None:
    workflow = {"1": {"class_type": "LoadImage", "inputs": {"image": "https://[example.com]/a.png"}}}
    with pytest.raises(URLRefusedError, match="not a valid URL"):
        download_url_inputs(workflow, tmp_path, settings=InputSettings(), loaders=builtin_loader_map())


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/" + "%E5%86%99%E7%9C%9F" * 60 + ".png", {}),
        ("/dl", {"Content-Disposition": "attachment; filename*=UTF-8''" + "%E5%86%99" * 150}),
    ],
)
def test_a_long_non_ascii_name_is_cut_to_fit_the_file_system(
    server, tmp_path: Path, path: str, headers: dict
) -> None:
    server.routes[path] = Route(PNG, headers=headers)
    first = download_to_folder(server.url(path), tmp_path, settings=ALLOWED)
    second = download_to_folder(server.url(path), tmp_path, settings=ALLOWED)
    assert first.read_bytes() == second.read_bytes() == PNG and first != second
    assert all(len(p.name.encode()) <= 255 and p.name.startswith("写") for p in (first, second))
    assert first.suffix == (".png" if path.endswith(".png") else "")
