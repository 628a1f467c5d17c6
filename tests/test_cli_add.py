"""`python -m weightkit add URL` as a real process, against a stand-in Hugging Face and its CDN, a
stand-in CivitAI and a plain file server, all on loopback: each source kind pinned into the user
manifest, and each failure a paragraph with nothing written."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from tests.cli_process import weightkit_runner
from tests.downloadkit import safetensors_bytes, sha256
from tests.faultserver import FaultServer
from tests.hubservers import Hub, hub
from weightkit.manifest_file import load_manifest, parse_manifest
from weightkit.settings import BUILTIN_MANIFEST
from weightkit.verified import VerifiedRecords

ROOT = Path(__file__).resolve().parent.parent
DATA = safetensors_bytes(300_000, seed=21)
OLD = safetensors_bytes(200_000, seed=22)


@pytest.fixture
def stand_in():
    with hub() as running:
        yield running


@pytest.fixture
def civitai(stand_in):
    """A stand-in CivitAI: model 123 (a LORA) with versions 456 (latest) and 400; downloads redirect to
    the CDN and want a token."""
    with FaultServer() as server:

        def version(number: int, data: bytes, name: str, *, hashed: bool = True) -> dict:
            hashes = {"SHA256": sha256(data).upper(), "AutoV2": "ABCDEF0123"} if hashed else {"AutoV2": "X"}
            files = [
                {"name": "preview.yaml", "type": "Config", "sizeKB": 1.0, "primary": False, "hashes": {}},
                {
                    "name": name,
                    "type": "Model",
                    "sizeKB": round(len(data) / 1024, 2),
                    "primary": True,
                    "hashes": hashes,
                },
            ]
            stand_in.cdn.serve(f"/civitai/{number}", data)
            server.serve(
                f"/api/download/models/{number}",
                b"",
                redirect=stand_in.cdn.url(f"/civitai/{number}"),
                require_token="civ_secret",
            )
            body = {"id": number, "modelId": 123, "name": f"v{number}", "files": files}
            model = {"name": "My Style", "type": "LORA", "nsfw": False}
            server.serve(f"/api/v1/model-versions/{number}", json.dumps({**body, "model": model}).encode())
            return body

        latest, older = version(456, DATA, "My Style.safetensors"), version(400, OLD, "style_v1.safetensors")
        model = {
            "id": 123,
            "name": "My Style",
            "type": "LORA",
            "allowCommercialUse": ["Image", "Rent"],
            "allowDerivatives": True,
            "modelVersions": [latest, older],
        }
        server.serve("/api/v1/models/123", json.dumps(model).encode())
        plain = {
            **model,
            "id": 124,
            "modelVersions": [{**version(457, DATA, "x.safetensors", hashed=False), "modelId": 124}],
        }
        server.serve("/api/v1/models/124", json.dumps(plain).encode())
        yield server


@pytest.fixture
def run(tmp_path, stand_in, civitai):
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WEIGHTS_", "EXTRA_MODEL_PATHS", "HF_", "HUGGING", "CIVITAI"))
    }
    env.update(
        COMFYUI_PATH=str(tmp_path / "ComfyUI"),
        WEIGHTS_DIR=str(tmp_path / "weights"),
        WEIGHTS_MANIFEST_EXTRA=str(tmp_path / "mine.json"),
        WEIGHTS_HF_ENDPOINT=stand_in.endpoint,
        WEIGHTS_CIVITAI_ENDPOINT=civitai.origin,
        WEIGHTS_RETRIES="0",
        CIVITAI_API_TOKEN="civ_secret",
        PYTHONPATH=str(ROOT),
    )

    return weightkit_runner(env, tmp_path)


def _mine(tmp_path: Path) -> dict:
    """The user manifest: validated merged with the built-in one, and in canonical, byte-stable form."""
    path = tmp_path / "mine.json"
    load_manifest(BUILTIN_MANIFEST, path)
    text = path.read_text()
    assert parse_manifest(json.loads(text), check_kits=False).dumps() == text
    return json.loads(text)


def _weight(manifest: dict, key: str) -> dict:
    return next(w for w in manifest["weights"] if f"{w['folder']}/{w['name']}" == key)


@pytest.mark.parametrize(
    "pasted",
    [
        "https://huggingface.co/org/repo/blob/main/w.safetensors",
        "https://huggingface.co/org/repo/resolve/main/w.safetensors?download=true",
        "hf://org/repo/w.safetensors",
    ],
)
def test_add_from_hugging_face_pins_what_the_host_states_without_downloading(run, tmp_path, stand_in, pasted):
    stand_in.publish("org/repo", "w.safetensors", DATA)
    stand_in.card("org/repo", license="apache-2.0")
    result = run("add", pasted, "--folder", "loras")
    assert result.returncode == 0, result.stderr
    assert "Added loras/w.safetensors" in result.stdout and "stated by Hugging Face" in result.stdout
    weight = _weight(_mine(tmp_path), "loras/w.safetensors")
    assert weight == {
        "name": "w.safetensors",
        "folder": "loras",
        "size": len(DATA),
        "sha256": sha256(DATA),
        "urls": [Hub.url("org/repo", "w.safetensors")],
        "license": "apache-2.0",
        "non_commercial": False,
        "gated": False,
    }
    assert stand_in.head_requests() == [Hub.resolve_path("org/repo", "w.safetensors")]
    assert stand_in.cdn.requests == [] and not (tmp_path / "weights" / "loras").exists()


def test_a_weight_added_from_hugging_face_downloads_verified_by_name(run, tmp_path, stand_in):
    stand_in.publish("org/repo", "w.safetensors", DATA)
    stand_in.card("org/repo")
    assert run("add", Hub.url("org/repo", "w.safetensors"), "--folder", "loras").returncode == 0
    result = run("download", "loras/w.safetensors")
    assert result.returncode == 0, result.stderr
    path = tmp_path / "weights" / "loras" / "w.safetensors"
    assert path.read_bytes() == DATA
    assert (
        VerifiedRecords(tmp_path / "weights" / ".weightkit" / "verified").lookup_record(path).source
        == "manifest"
    )


def test_add_of_a_gated_non_commercial_repository_says_so_and_uses_the_token(run, tmp_path, stand_in):
    stand_in.publish("org/gated", "g.safetensors", DATA, token="hf_secret")
    stand_in.card("org/gated", license="cc-by-nc-4.0", gated="manual")
    refused = run("add", Hub.url("org/gated", "g.safetensors"), "--folder", "checkpoints")
    assert refused.returncode == 1 and "set HF_TOKEN" in refused.stderr
    assert not (tmp_path / "mine.json").exists()
    result = run(
        "add", Hub.url("org/gated", "g.safetensors"), "--folder", "checkpoints", HF_TOKEN="hf_secret"
    )
    assert result.returncode == 0, result.stderr
    weight = _weight(_mine(tmp_path), "checkpoints/g.safetensors")
    assert (weight["gated"], weight["non_commercial"], weight["license"]) == (True, True, "cc-by-nc-4.0")


@pytest.mark.parametrize("linked", ["missing", "git-etag"])
def test_add_refuses_a_hugging_face_answer_without_linked_headers(run, tmp_path, stand_in, linked):
    stand_in.publish("org/repo", "w.safetensors", DATA, linked=linked)
    result = run("add", Hub.url("org/repo", "w.safetensors"), "--folder", "loras")
    assert result.returncode == 1
    assert result.stderr.startswith(
        "error: Could not add https://huggingface.co/org/repo/resolve/main/w.safetensors"
    )
    assert "Nothing was written." in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "mine.json").exists() and stand_in.cdn.requests == []


def test_add_when_the_host_cannot_be_reached_is_one_paragraph(run, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    result = run("add", Hub.url("org/repo", "w.safetensors"), "--folder", "loras", WEIGHTS_HF_ENDPOINT=closed)
    assert result.returncode == 1 and "WEIGHTS_HF_ENDPOINT" in result.stderr and closed in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "mine.json").exists()


@pytest.mark.parametrize(
    ("pasted", "version", "name", "data"),
    [
        ("https://civitai.com/models/123/my-style", 456, "My_Style.safetensors", DATA),
        ("https://civitai.com/models/123?modelVersionId=400", 400, "style_v1.safetensors", OLD),
        ("https://civitai.com/api/download/models/400", 400, "style_v1.safetensors", OLD),
    ],
)
def test_add_from_a_civitai_page_takes_the_apis_sha256_and_folder(
    run, tmp_path, stand_in, civitai, pasted, version, name, data
):
    result = run("add", pasted)
    assert result.returncode == 0, result.stderr
    weight = _weight(_mine(tmp_path), f"loras/{name}")
    assert weight["urls"] == [f"https://civitai.com/api/download/models/{version}"]
    assert (weight["size"], weight["sha256"], weight["non_commercial"]) == (len(data), sha256(data), False)
    assert "commercial use allowed: Image, Rent" in weight["notes"]
    assert stand_in.cdn.bytes_served() <= 1  # the size from one byte's answer, not a download
    assert civitai.seen(f"/api/download/models/{version}")[0].headers["Authorization"] == "Bearer civ_secret"
    assert all("Authorization" not in seen.headers for seen in stand_in.cdn.requests)


def test_add_from_civitai_without_a_sha256_downloads_into_the_weights_folder_and_hashes(run, tmp_path):
    result = run("add", "https://civitai.com/models/124")
    assert result.returncode == 0, result.stderr
    weight = _weight(_mine(tmp_path), "loras/x.safetensors")
    assert weight["sha256"] == sha256(DATA) and "of the downloaded file" in result.stdout
    assert (tmp_path / "weights" / "loras" / "x.safetensors").read_bytes() == DATA


def test_add_from_another_host_downloads_where_it_will_be_used_and_pins_its_hash(run, tmp_path):
    with FaultServer() as files:
        files.serve("/files/detail.safetensors", DATA)
        result = run(
            "add", files.url("/files/detail.safetensors"), "--folder", "loras", "--name", "d.safetensors"
        )
        assert result.returncode == 0, result.stderr
        assert files.bytes_served() >= len(DATA)
        again = run(
            "add", files.url("/files/detail.safetensors"), "--folder", "loras", "--name", "d.safetensors"
        )
    weight = _weight(_mine(tmp_path), "loras/d.safetensors")
    assert (weight["size"], weight["sha256"]) == (len(DATA), sha256(DATA))
    assert (tmp_path / "weights" / "loras" / "d.safetensors").read_bytes() == DATA
    assert again.returncode == 1 and "cannot tell whether it came from this URL" in again.stderr


def test_add_to_a_kit_creates_it_in_the_user_manifest_and_keeps_its_earlier_weights(run, tmp_path, stand_in):
    for file in ("a.safetensors", "b.safetensors"):
        stand_in.publish("org/repo", file, DATA)
    stand_in.card("org/repo")
    for file in ("a.safetensors", "b.safetensors"):
        result = run("add", Hub.url("org/repo", file), "--folder", "loras", "--kit", "my-loras")
        assert result.returncode == 0, result.stderr
    kit = _mine(tmp_path)["kits"]["my-loras"]
    assert kit == {
        "description": "Added by `python -m weightkit add`.",
        "weights": ["loras/a.safetensors", "loras/b.safetensors"],
    }
    listed = run("kits")
    assert "my-loras" in listed.stdout


def test_add_to_a_built_in_kit_copies_it_rather_than_replacing_it(run, tmp_path, stand_in):
    stand_in.publish("org/repo", "w.safetensors", DATA)
    stand_in.card("org/repo")
    builtin = load_manifest(BUILTIN_MANIFEST).kits["upscale"]
    assert (
        run("add", Hub.url("org/repo", "w.safetensors"), "--folder", "loras", "--kit", "upscale").returncode
        == 0
    )
    assert _mine(tmp_path)["kits"]["upscale"]["weights"] == [*builtin.weights, "loras/w.safetensors"]


def test_add_dry_run_prints_the_entry_and_writes_nothing(run, tmp_path, stand_in):
    stand_in.publish("org/repo", "w.safetensors", DATA)
    stand_in.card("org/repo")
    result = run("add", Hub.url("org/repo", "w.safetensors"), "--folder", "loras", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["sha256"] == sha256(DATA) and "nothing written" in result.stderr
    assert not (tmp_path / "mine.json").exists() and stand_in.cdn.requests == []


def test_add_dry_run_of_an_entry_the_manifest_would_refuse_is_refused_as_add_refuses_it(
    run, tmp_path, stand_in
):
    stand_in.publish("org/repo", "w.safetensors", DATA)
    stand_in.card("org/repo")
    other = {
        "name": "other.safetensors",
        "folder": "loras",
        "size": 1,
        "sha256": "0" * 64,
        "urls": ["https://example.com/other.safetensors"],
        "license": None,
        "non_commercial": False,
        "gated": False,
        "aliases": ["w.safetensors"],
    }
    mine = json.dumps({"schema_version": 1, "kits": {}, "weights": [other]})
    (tmp_path / "mine.json").write_text(mine)
    for extra in (["--dry-run"], []):
        result = run("add", Hub.url("org/repo", "w.safetensors"), "--folder", "loras", *extra)
        assert result.returncode == 2 and "'w.safetensors' names both" in result.stderr, result.stderr
        assert result.stdout == "" and (tmp_path / "mine.json").read_text() == mine


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--folder", "../loras"], "--folder '../loras' is not valid"),
        (["--folder", "loras", "--name", "../w.safetensors"], "the name '../w.safetensors' is not valid"),
        (["--folder", "loras", "--name", "w.txt"], "no model file extension"),
        (["--folder", "loras", "--kit", "My Kit"], "--kit 'My Kit' is not valid"),
        ([], "say which model folder"),
    ],
)
def test_add_with_bad_arguments_is_bad_input_before_any_request(run, tmp_path, stand_in, args, says):
    stand_in.publish("org/repo", "w.safetensors", DATA)
    result = run("add", Hub.url("org/repo", "w.safetensors"), *args)
    assert result.returncode == 2 and says in result.stderr, result.stderr
    assert (
        stand_in.hf.requests == [] and stand_in.cdn.requests == [] and not (tmp_path / "mine.json").exists()
    )


def test_add_with_a_bad_folder_says_so_even_when_the_host_is_unreachable(run, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    result = run("add", f"{closed}/w.safetensors", "--folder", "../loras")
    assert result.returncode == 2 and "--folder '../loras' is not valid" in result.stderr, result.stderr


def test_add_to_a_civitai_model_given_a_bad_kit_asks_civitai_nothing(run, civitai):
    result = run("add", "https://civitai.com/models/123", "--kit", "My Kit")
    assert result.returncode == 2 and "--kit 'My Kit' is not valid" in result.stderr, result.stderr
    assert civitai.requests == []


@pytest.mark.parametrize(
    ("pasted", "says"),
    [
        ("http://[::1/x.safetensors", "Invalid IPv6 URL"),
        ("http://127.0.0.1:99999/x.safetensors", "Port out of range"),
        ("hf://org/repo", "is not the hf:// path of a file"),
        ("ftp://example.com/x.safetensors", "is not an http(s) URL"),
    ],
)
def test_add_of_a_malformed_url_is_one_paragraph_of_bad_input(run, tmp_path, stand_in, pasted, says):
    result = run("add", pasted, "--folder", "loras")
    assert result.returncode == 2 and says in result.stderr and pasted in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert stand_in.hf.requests == [] and not (tmp_path / "mine.json").exists()


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["download", "loras=http://[::1/x.safetensors"], id="download"),
        pytest.param(["plan", "workflow.json"], id="plan"),
    ],
)
def test_a_malformed_weight_url_is_one_paragraph_of_bad_input(run, tmp_path, command):
    workflow = {"4": {"class_type": "LoraLoader", "inputs": {"lora_name": "http://[::1/x.safetensors"}}}
    (tmp_path / "workflow.json").write_text(json.dumps(workflow))
    result = run(*command, WEIGHTS_MANIFEST_EXTRA="")
    assert result.returncode == 2 and "'http://[::1/x.safetensors'" in result.stderr, result.stderr
    assert "Invalid IPv6 URL" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    if command[0] == "plan":
        assert "Node 4 (LoraLoader) input 'lora_name'" in result.stderr


def test_add_dry_run_of_a_civitai_file_of_unstated_size_says_add_downloads_it(run, tmp_path, civitai):
    """CivitAI states the sha256, its download's answer to add's one-byte probe no size: add downloads the
    file (checked against that sha256) for its size, and the dry run shows the entry add completes, not
    one it would refuse."""
    primary = {"name": "u.safetensors", "type": "Model", "primary": True, "hashes": {"SHA256": sha256(DATA)}}
    version = {"id": 458, "modelId": 125, "name": "v458", "files": [primary]}
    model = {"id": 125, "name": "U", "type": "LORA", "modelVersions": [version]}
    civitai.serve("/api/v1/models/125", json.dumps(model).encode())
    civitai.serve("/api/download/models/458", DATA, no_length=True)
    civitai.inject("/api/download/models/458", "slow", rate=1e12, whole=True, times=2)  # the two probes
    dry = run("add", "https://civitai.com/models/125", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert (json.loads(dry.stdout)["size"], json.loads(dry.stdout)["sha256"]) == (None, sha256(DATA))
    assert "add downloads and hashes the file" in dry.stderr and not (tmp_path / "mine.json").exists()
    added = run("add", "https://civitai.com/models/125")
    assert added.returncode == 0, added.stderr
    weight = _weight(_mine(tmp_path), "loras/u.safetensors")
    assert (weight["size"], weight["sha256"]) == (len(DATA), sha256(DATA))


def test_add_without_a_user_manifest_named_is_bad_input(run, stand_in):
    result = run("add", Hub.url("org/repo", "w.safetensors"), "--folder", "loras", WEIGHTS_MANIFEST_EXTRA="")
    assert result.returncode == 2 and "WEIGHTS_MANIFEST_EXTRA" in result.stderr
    assert stand_in.hf.requests == []
