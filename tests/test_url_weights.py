"""Weights a workflow gives as URLs: found by extraction under stable names, fetched through the store
from a real server on loopback, checked to be what their names say, and renamed in the workflow."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.downloadkit import fast_settings, safetensors_bytes
from tests.faultserver import FaultServer
from weightkit.errors import DownloadError, WeightURLError
from weightkit.extract import required_weights
from weightkit.manifest_file import parse_manifest
from weightkit.settings import WeightSettings
from weightkit.store import WeightStore, apply_renames
from weightkit.url_weights import check_weight_file
from weightkit.urlforms import stable_weight_name

LORA = safetensors_bytes(5_000, seed=3)


def test_loader_inputs_given_as_urls_are_weights_with_stable_names_and_the_rest_are_not():
    lora = "https://huggingface.co/user/repo/blob/main/style.safetensors"
    ckpt = "https://civitai.com/api/download/models/12345?type=Model&format=SafeTensor&token=secret"
    workflow = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "10": {"class_type": "LoraLoader", "inputs": {"lora_name": lora, "model": ["4", 0]}},
        "11": {"class_type": "LoadImage", "inputs": {"image": "https://example.com/cat.png"}},
        "12": {"class_type": "MyLoader", "inputs": {"model_path": "hf://org/repo/custom.pth@v2"}},
    }
    manifest = parse_manifest({"schema_version": 1, "loaders": {"MyLoader": {"model_path": "custom_models"}}})
    refs = required_weights(workflow, manifest)
    assert [(r.node_id, r.input_name, r.folder, r.url) for r in refs] == [
        ("4", "ckpt_name", "checkpoints", ckpt),
        ("10", "lora_name", "loras", lora),
        ("12", "model_path", "custom_models", "hf://org/repo/custom.pth@v2"),
    ]
    assert refs[0].name.endswith("-civitai-12345.safetensors") and refs[1].name.endswith("-style.safetensors")
    assert refs[2].name == stable_weight_name("https://huggingface.co/org/repo/resolve/v2/custom.pth")


def test_a_url_the_manifest_lists_is_that_manifest_weight():
    url = "https://huggingface.co/org/repo/resolve/main/vae.safetensors"
    entry = {"name": "vae.safetensors", "folder": "vae", "size": 3, "sha256": "a" * 64, "urls": [url]}
    entry |= {"license": None, "non_commercial": False, "gated": False}
    manifest = parse_manifest({"schema_version": 1, "weights": [entry]})
    pasted = "https://huggingface.co/org/repo/blob/main/vae.safetensors"
    (ref,) = required_weights({"1": {"class_type": "VAELoader", "inputs": {"vae_name": pasted}}}, manifest)
    assert (ref.name, ref.entry.key, ref.url) == ("vae.safetensors", "vae/vae.safetensors", pasted)


@pytest.fixture
def served(tmp_path) -> tuple[FaultServer, WeightStore]:
    with FaultServer() as server:
        server.serve("/u/style.safetensors", LORA)
        server.serve("/u/login.safetensors", b"<!DOCTYPE html><html>log in</html>")
        server.serve("/u/login.pth", b"<!DOCTYPE html><html>log in</html>")
        server.serve("/u/login.pth", b"<!DOCTYPE html><html>log in</html>")
        settings = WeightSettings(
            comfyui_path=tmp_path / "ComfyUI", weights_dir=tmp_path / "weights", download=fast_settings()
        )
        yield server, WeightStore(settings)


def test_ensure_fetches_a_url_weight_once_and_the_workflow_names_the_stored_file(served):
    server, store = served
    url = server.url("/u/style.safetensors")
    workflow = {"1": {"class_type": "LoraLoader", "inputs": {"lora_name": url}}}
    ensured = store.ensure(workflow, fetch_missing=False)  # strict mode: the workflow asked for the URL
    name = stable_weight_name(url)
    assert (store.settings.weights_dir / "loras" / name).read_bytes() == LORA
    assert apply_renames(workflow, ensured.renames)["1"]["inputs"]["lora_name"] == name
    served_once = server.bytes_served()
    again = store.ensure(workflow)
    assert server.bytes_served() == served_once and again.renames == ensured.renames


def lora(url: str) -> dict:
    return {"1": {"class_type": "LoraLoader", "inputs": {"lora_name": url}}}


def test_a_url_weight_that_is_a_web_page_is_refused_and_quarantined(served):
    server, store = served
    with pytest.raises(WeightURLError, match="web page"):
        store.ensure(lora(server.url("/u/login.pth")))
    assert not list((store.settings.weights_dir / "loras").glob("[!.]*login*"))  # lock files start with .
    assert list(store.state.quarantine("loras").iterdir())


def test_a_safetensors_url_weight_that_is_not_one_never_gets_its_name(served):
    server, store = served
    with pytest.raises(DownloadError, match="not a safetensors file"):
        store.ensure(lora(server.url("/u/login.safetensors")))
    assert not list((store.settings.weights_dir / "loras").glob("[!.]*login*"))


def test_a_url_weight_whose_guard_refuses_it_is_not_fetched(served):
    server, store = served

    def refuse(url: str) -> None:
        raise ValueError("not on the allowed list")

    with pytest.raises(DownloadError, match="not on the allowed list"):
        store.ensure(lora(server.url("/u/style.safetensors")), url_guard=refuse)
    assert server.requests == []


def test_check_weight_file_accepts_safetensors_and_pickles_under_their_names(tmp_path: Path):
    header = b'{"__metadata__":{}}'
    (tmp_path / "a").write_bytes(len(header).to_bytes(8, "little") + header)
    check_weight_file(tmp_path / "a", url="https://x/a.safetensors", name="h-a.safetensors")
    (tmp_path / "b").write_bytes(b"PK\x03\x04pickled checkpoint")
    check_weight_file(tmp_path / "b", url="https://x/b.ckpt", name="h-b.ckpt")


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("h-1.safetensors", b"PK\x03\x04pickled checkpoint", "not a safetensors file"),
        ("x.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{", "not a safetensors file"),
        ("x.safetensors", b"  <!DOCTYPE html><html>login</html>", "web page"),
        ("x.ckpt", b"<html><body>Not found</body></html>", "web page"),
    ],
)
def test_check_weight_file_refuses_what_its_name_is_not(tmp_path: Path, name: str, content: bytes, problem):
    (tmp_path / "w").write_bytes(content)
    with pytest.raises(WeightURLError, match=problem) as caught:
        check_weight_file(tmp_path / "w", url="https://x/w?token=secret", name=name)
    assert "secret" not in str(caught.value)
