"""Downloads into the input folder, URL inputs of a workflow, and weights given by URL."""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path

import pytest

from prediction.input_errors import InputDownloadError, InputTooLargeError, URLRefusedError, WeightURLError
from prediction.settings import InputSettings
from prediction.url_download import download_to_folder, safe_file_name
from prediction.url_inputs import download_url_inputs
from prediction.weight_urls import (
    check_weight_file,
    find_weight_urls,
    stable_weight_name,
    use_weight_names,
)
from tests.inputs_http import LocalServer, Route
from weightkit.loaders import builtin_loader_map

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
    with pytest.raises(InputDownloadError, match="closed after 10 of 500 bytes"):
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
    with pytest.raises(InputDownloadError, match="stalled"):
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


def test_weight_urls_found_in_loader_inputs_with_stable_names() -> None:
    lora = "https://huggingface.co/user/repo/resolve/main/style.safetensors?download=true"
    ckpt = "https://civitai.com/api/download/models/12345?type=Model&format=SafeTensor&token=secret"
    workflow = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "10": {
            "class_type": "LoraLoader",
            "inputs": {"lora_name": lora, "strength_model": 1.0, "model": ["4", 0]},
        },
        "11": {"class_type": "LoadImage", "inputs": {"image": "https://example.com/cat.png"}},
        "12": {"class_type": "MyLoader", "inputs": {"model_path": "https://example.com/custom.pth"}},
    }
    found = find_weight_urls(
        workflow, builtin_loader_map().merged({"MyLoader": {"model_path": "custom_models"}})
    )
    assert [(w.node_id, w.input_name, w.folder) for w in found] == [
        ("4", "ckpt_name", "checkpoints"),
        ("10", "lora_name", "loras"),
        ("12", "model_path", "custom_models"),
    ]
    assert found[0].name.endswith("-12345.safetensors")
    assert found[1].name.endswith("-style.safetensors")
    assert found[2].name.endswith("-custom.pth")
    rewritten = use_weight_names(workflow, found)
    assert rewritten["10"]["inputs"]["lora_name"] == found[1].name
    assert rewritten["4"]["inputs"]["ckpt_name"] == found[0].name
    assert rewritten["11"] == workflow["11"] and workflow["10"]["inputs"]["lora_name"] == lora


@pytest.mark.parametrize(
    ("one", "other", "same"),
    [
        (
            "https://huggingface.co/u/r/resolve/main/x.safetensors?download=true",
            "https://huggingface.co/u/r/resolve/main/x.safetensors",
            True,
        ),
        (
            "https://civitai.com/api/download/models/1?token=aaa",
            "https://civitai.com/api/download/models/1?token=bbb",
            True,
        ),
        (
            "https://bucket.s3.amazonaws.com/x.safetensors?X-Amz-Signature=1&X-Amz-Expires=60",
            "https://bucket.s3.amazonaws.com/x.safetensors?X-Amz-Signature=2&X-Amz-Expires=90",
            True,
        ),
        ("https://HOST.example/x.safetensors#frag", "https://host.example/x.safetensors", True),
        ("https://civitai.com/api/download/models/1", "https://civitai.com/api/download/models/2", False),
        (
            "https://civitai.com/api/download/models/1?format=SafeTensor",
            "https://civitai.com/api/download/models/1?format=PickleTensor",
            False,
        ),
        ("https://a.example/x.safetensors", "https://b.example/x.safetensors", False),
    ],
)
def test_stable_weight_name_same_file_same_name(one: str, other: str, same: bool) -> None:
    assert (stable_weight_name(one) == stable_weight_name(other)) is same


def test_stable_weight_name_shape() -> None:
    name = stable_weight_name("https://example.com/models/My%20LoRA%20v2.safetensors")
    digest, _, rest = name.partition("-")
    assert len(digest) == 12 and int(digest, 16) >= 0
    assert rest == "My_LoRA_v2.safetensors"
    assert stable_weight_name("https://example.com/").endswith("-weight.safetensors")
    assert stable_weight_name("https://example.com/x.ckpt").endswith("-x.ckpt")


def _weight(name: str):
    return find_weight_urls(
        {"1": {"class_type": "LoraLoader", "inputs": {"lora_name": f"https://example.com/{name}"}}},
        builtin_loader_map(),
    )[0]


def test_check_weight_file_accepts_safetensors(tmp_path: Path) -> None:
    header = b'{"__metadata__":{}}'
    path = tmp_path / "w"
    path.write_bytes(len(header).to_bytes(8, "little") + header)
    check_weight_file(_weight("1"), path)


@pytest.mark.parametrize(
    ("url_name", "content", "problem"),
    [
        ("1", b"PK\x03\x04pickled checkpoint", "not a safetensors file"),
        (
            "x.safetensors",
            b"\x10\x00\x00\x00\x00\x00\x00\x00{",
            "not a safetensors file",
        ),  # header past the end
        ("x.safetensors", b"  <!DOCTYPE html><html>login</html>", "web page"),
        ("x.ckpt", b"<html><body>Not found</body></html>", "web page"),
    ],
)
def test_check_weight_file_refuses_what_its_name_is_not(
    tmp_path: Path, url_name: str, content: bytes, problem: str
) -> None:
    path = tmp_path / "w"
    path.write_bytes(content)
    with pytest.raises(WeightURLError, match=problem):
        check_weight_file(_weight(url_name), path)


def test_check_weight_file_accepts_pickle_under_ckpt_name(tmp_path: Path) -> None:
    path = tmp_path / "w"
    path.write_bytes(b"PK\x03\x04pickled checkpoint")
    check_weight_file(_weight("x.ckpt"), path)
