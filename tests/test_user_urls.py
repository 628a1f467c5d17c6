"""Every URL a prediction brings goes one way (issue 9 items 15 and 16): resolved once by the guard, each
address checked, connected to at exactly the checked address, at every redirect hop; and no token sent.

DNS rebinding is played with a resolver that answers 127.0.0.1 (allowed) the first time it is asked about
`rebind.test` and 127.0.0.2 (refused) every time after; real servers listen at both addresses on one port.
The guarded fetch must never ask twice, so the server at 127.0.0.2 must never see a request. Each kind of
user URL is tried: the workflow URL, an input URL, a loader (weight) URL, and Cog's `weights` URL.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from prediction.netguard import URLGuard
from prediction.settings import InputSettings
from prediction.url_download import download_to_folder, fetch_bytes
from tests.downloadkit import fast_settings, safetensors_bytes, tar_bytes, with_token
from tests.faultserver import FaultServer
from weightkit.errors import DownloadError
from weightkit.settings import WeightSettings
from weightkit.store import WeightStore

LOCAL_ONLY = InputSettings(download_timeout=5, allowed_networks=(ipaddress.ip_network("127.0.0.1/32"),))
LORA = safetensors_bytes(4_000, seed=21)


def rebinding(asked: list[str]) -> Callable[[str, int], list[str]]:
    """A resolver whose first answer for a name is the allowed address and every later one the refused."""

    def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["127.0.0.1"] if asked.count(host) == 1 else ["127.0.0.2"]

    return resolve


@pytest.fixture
def twins():
    with FaultServer("127.0.0.1") as near, FaultServer("127.0.0.2", near.port) as far:
        for server in (near, far):
            server.serve("/workflow.json", json.dumps({"1": {"class_type": "X", "inputs": {}}}).encode())
            server.serve("/input.png", b"\x89PNG\r\n\x1a\n" + bytes(200))
            server.serve("/lora.safetensors", LORA)
            server.serve("/weights.tar", tar_bytes({"loras/trained.safetensors": LORA}))
        yield near, far


def url(near: FaultServer, path: str) -> str:
    return f"http://rebind.test:{near.port}{path}"


def store(tmp_path: Path, **download) -> WeightStore:
    settings = WeightSettings(
        comfyui_path=tmp_path / "ComfyUI",
        weights_dir=tmp_path / "weights",
        download=fast_settings(**download),
    )
    return WeightStore(settings)


def lora(address: str) -> dict:
    return {"1": {"class_type": "LoraLoader", "inputs": {"lora_name": address}}}


def test_a_workflow_url_is_fetched_from_the_address_checked_not_a_second_answer(twins):
    near, far = twins
    asked: list[str] = []
    guard = URLGuard(LOCAL_ONLY, resolve=rebinding(asked))
    fetched = fetch_bytes(
        url(near, "/workflow.json"), settings=LOCAL_ONLY, max_bytes=1000, limit_setting="L", guard=guard
    )
    assert json.loads(fetched.data)["1"]["class_type"] == "X"
    assert asked == ["rebind.test"] and far.requests == []
    assert near.requests[0].headers["Host"] == f"rebind.test:{near.port}"


def test_an_input_url_is_fetched_from_the_address_checked_not_a_second_answer(twins, tmp_path):
    near, far = twins
    asked: list[str] = []
    guard = URLGuard(LOCAL_ONLY, resolve=rebinding(asked))
    path = download_to_folder(url(near, "/input.png"), tmp_path, settings=LOCAL_ONLY, guard=guard)
    assert path.read_bytes().startswith(b"\x89PNG")
    assert asked == ["rebind.test"] and far.requests == []


def test_a_loader_url_is_fetched_from_the_address_checked_not_a_second_answer(twins, tmp_path):
    near, far = twins
    asked: list[str] = []
    weights = store(tmp_path, connections_per_file=4, chunk_size=1024)  # several requests, one lookup
    weights.ensure(
        lora(url(near, "/lora.safetensors")), url_guard=URLGuard(LOCAL_ONLY, resolve=rebinding(asked))
    )
    (fetched,) = (tmp_path / "weights" / "loras").glob("[!.]*lora.safetensors")
    assert fetched.read_bytes() == LORA
    assert far.requests == [] and len(near.requests) > 1
    assert asked == ["rebind.test"]


def test_cogs_weights_url_is_fetched_from_the_address_checked_not_a_second_answer(twins, tmp_path):
    near, far = twins
    asked: list[str] = []
    installed = store(tmp_path).install_archive(
        url(near, "/weights.tar"), url_guard=URLGuard(LOCAL_ONLY, resolve=rebinding(asked))
    )
    assert [p.read_bytes() for p in installed] == [LORA]
    assert asked == ["rebind.test"] and far.requests == []


def test_a_redirect_to_a_name_that_rebinds_is_checked_again_and_refused(twins, tmp_path):
    near, far = twins
    near.serve("/moved", b"", redirect=url(near, "/lora.safetensors").replace("rebind.test", "other.test"))
    asked: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["127.0.0.1"] if host == "rebind.test" else ["127.0.0.2"]

    with pytest.raises(DownloadError, match=r"127\.0\.0\.2 is a loopback address"):
        store(tmp_path).ensure(lora(url(near, "/moved")), url_guard=URLGuard(LOCAL_ONLY, resolve=resolve))
    assert asked == ["rebind.test", "other.test"] and far.requests == []


@pytest.mark.parametrize(("allowed", "sent"), [(False, False), (True, True)])
def test_a_token_goes_to_a_weight_url_of_a_prediction_only_when_the_operator_allows_it(
    tmp_path, allowed, sent
):
    with FaultServer() as hub:
        hub.serve("/org/repo/resolve/main/lora.safetensors", LORA)
        settings = with_token(fast_settings(), hub.url("/").rstrip("/"), "hf_operator_secret")
        weights = WeightStore(
            WeightSettings(comfyui_path=tmp_path / "C", weights_dir=tmp_path / "w", download=settings)
        )
        weights.ensure(lora(hub.url("/org/repo/resolve/main/lora.safetensors")), url_tokens=allowed)
        headers = [seen.headers for seen in hub.requests]
    assert headers and all(("Authorization" in h) is sent for h in headers)
    assert (
        sent is InputSettings.from_env({"INPUT_URLS_GET_TOKENS": "true" if allowed else ""}).tokens_for_urls
    )
