"""The manifest schema: the committed file, every validation error, aliases, kits and user manifests."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from weightkit.errors import ManifestError, UnknownKitError
from weightkit.manifest import name_is_safe
from weightkit.manifest_file import load_manifest, parse_manifest
from weightkit.settings import BUILTIN_MANIFEST

FACTS = Path(__file__).resolve().parent / "reference" / "weights-facts" / "weights_facts.json"
SHA_A = "a" * 64


def minimal(**weight_overrides) -> dict:
    weight = {
        "name": "model.safetensors",
        "folder": "checkpoints",
        "size": 10,
        "sha256": SHA_A,
        "urls": ["https://example.com/model.safetensors"],
        "license": "mit",
        "non_commercial": False,
        "gated": False,
    }
    weight.update(weight_overrides)
    return {"schema_version": 1, "kits": {}, "loaders": {}, "weights": [weight]}


def test_builtin_manifest_loads_and_is_byte_stable():
    text = BUILTIN_MANIFEST.read_text(encoding="utf-8")
    manifest = load_manifest(BUILTIN_MANIFEST)
    assert manifest.dumps() == text


def test_builtin_manifest_holds_every_weights_fact():
    manifest = load_manifest(BUILTIN_MANIFEST)
    facts = json.loads(FACTS.read_text())
    for fact in facts:
        entry = manifest.entries[f"{fact['folder']}/{fact['name']}"]
        assert (entry.size, entry.sha256, entry.urls[0]) == (fact["size_bytes"], fact["sha256"], fact["url"])
        assert entry.gated == fact["gated"]


def test_every_hash_in_the_catalog_is_a_verified_fact_and_the_rest_are_left_to_hugging_face():
    """A hash is in the manifest only when two independent public places confirm it (the weights facts);
    every other entry is served by Hugging Face, which states the size and sha256 itself."""
    manifest = load_manifest(BUILTIN_MANIFEST)
    facts = {(f["folder"], f["name"]): f["sha256"] for f in json.loads(FACTS.read_text())}
    assert len(manifest.entries) >= 300
    for entry in manifest.entries.values():
        if entry.sha256 is not None:
            assert facts[(entry.folder, entry.name)] == entry.sha256, entry.key
        else:
            assert all(url.startswith("https://huggingface.co/") and "/resolve/" in url for url in entry.urls)
        assert entry.size is not None or entry.sha256 is None or entry.key in facts


def test_one_name_in_two_folders_only_where_told_apart():
    manifest = load_manifest(BUILTIN_MANIFEST)
    folders: dict[str, set[str]] = {}
    for entry in manifest.entries.values():
        folders.setdefault(entry.name, set()).add(entry.folder)
    shared = {name: sorted(where) for name, where in folders.items() if len(where) > 1}
    # flux1-dev-fp8: Comfy-Org's checkpoint and Kijai's diffusion model; ip-adapter.bin: InstantID's and
    # the FLUX IP-Adapter, each loaded by its own node from its own folder.
    assert shared == {
        "flux1-dev-fp8.safetensors": ["checkpoints", "diffusion_models"],
        "ip-adapter.bin": ["instantid", "ipadapter-flux"],
    }


def test_kits_of_the_current_families_say_licence_gating_and_size():
    manifest = load_manifest(BUILTIN_MANIFEST)
    for name in ("wan", "hunyuan-video", "qwen-image", "qwen-image-edit", "ltxv", "flux-kontext", "svd"):
        description = manifest.kits[name].description
        assert "Licence:" in description and "gated" in description.lower() and "Size:" in description


def test_one_name_two_files_are_told_apart_by_folder():
    manifest = load_manifest(BUILTIN_MANIFEST)
    checkpoint = manifest.find("flux1-dev-fp8.safetensors", "checkpoints")
    unet = manifest.find("flux1-dev-fp8.safetensors", "diffusion_models")
    assert checkpoint and unet and checkpoint.sha256 != unet.sha256
    assert manifest.find("flux1-dev-fp8.safetensors") is None  # ambiguous without a folder
    assert {e.folder for e in manifest.candidates("flux1-dev-fp8.safetensors")} == {
        "checkpoints",
        "diffusion_models",
    }


def test_required_kits_exist_and_name_real_entries():
    manifest = load_manifest(BUILTIN_MANIFEST)
    for kit in ("sd15", "sdxl", "flux", "flux-dev", "sd35", "upscale"):
        entries = manifest.kit_entries(kit)
        assert entries and manifest.kits[kit].description
    flux = {e.key for e in manifest.kit_entries("flux")}
    assert {"vae/ae.safetensors", "text_encoders/clip_l.safetensors"} <= flux


def test_unknown_kit_lists_the_known_ones():
    manifest = load_manifest(BUILTIN_MANIFEST)
    with pytest.raises(UnknownKitError) as info:
        manifest.kit("sd9")
    assert "sd9" in str(info.value) and "sdxl" in str(info.value) and "BASE_MODEL_KIT" in str(info.value)


def test_sft_and_safetensors_spellings_and_aliases_resolve_to_one_entry():
    manifest = load_manifest(BUILTIN_MANIFEST)
    ae = manifest.find("ae.safetensors", "vae")
    assert manifest.find("ae.sft", "vae") is ae
    assert manifest.find("ae.sft") is ae
    lcm = manifest.find("lcm-lora-sdv1-5.safetensors", "loras")
    assert manifest.find("lcm_lora_sd15.safetensors", "loras") is lcm
    assert manifest.find("lcm_lora_sd15.sft", "loras") is lcm


def test_legacy_folder_names_mean_the_same_folder():
    manifest = load_manifest(BUILTIN_MANIFEST)
    assert manifest.find("clip_l.safetensors", "clip") is manifest.find("clip_l.safetensors", "text_encoders")
    assert manifest.find("flux1-schnell.safetensors", "unet") is not None


@pytest.mark.parametrize(
    ("override", "field", "words"),
    [
        ({"sha256": "ABC"}, "sha256", "64 lowercase"),
        ({"sha256": "A" * 64}, "sha256", "64 lowercase"),
        ({"size": 0}, "size", "positive"),
        ({"size": True}, "size", "positive"),
        ({"size": "10"}, "size", "positive"),
        ({"urls": []}, "urls", "non-empty"),
        ({"urls": ["ftp://x/y"]}, "urls", "not an http(s) URL"),
        ({"urls": ["https://a/b", "https://a/b"]}, "urls", "twice"),
        ({"name": "../evil.safetensors"}, "name", "relative path"),
        ({"name": "/etc/passwd"}, "name", "relative path"),
        ({"folder": "check/points"}, "folder", "model folder"),
        ({"gated": "no"}, "gated", "true or false"),
        ({"non_commercial": None}, "non_commercial", "true or false"),
        ({"license": ""}, "license", "license name"),
        ({"aliases": ["../x.pth"]}, "aliases", "relative file names"),
        ({"colour": "blue"}, "colour", "unknown field"),
    ],
)
def test_invalid_entry_names_entry_and_field(override, field, words):
    with pytest.raises(ManifestError) as info:
        parse_manifest(minimal(**override), source="m.json")
    message = str(info.value)
    assert info.value.field == field
    assert "weights[0]" in message and f"'{field}'" in message and words in message and "m.json" in message


def test_missing_required_field_is_named():
    doc = minimal()
    del doc["weights"][0]["sha256"]
    with pytest.raises(ManifestError, match=r"weights\[0\] \(checkpoints/model.safetensors\) field 'sha256'"):
        parse_manifest(doc)


def test_duplicate_entry_and_conflicting_alias_are_refused():
    doc = minimal()
    doc["weights"].append(copy.deepcopy(doc["weights"][0]))
    with pytest.raises(ManifestError, match="appears twice"):
        parse_manifest(doc)
    doc = minimal(aliases=["other.safetensors"])
    doc["weights"].append({**doc["weights"][0], "name": "other.safetensors", "aliases": []})
    with pytest.raises(ManifestError, match="names both"):
        parse_manifest(doc)


@pytest.mark.parametrize(
    ("doc_change", "words"),
    [
        (lambda d: d.update(schema_version=2), "schema_version must be 1"),
        (lambda d: d.update(extra=1), "unknown top-level"),
        (
            lambda d: d.update(kits={"k": {"description": "x", "weights": ["checkpoints/nope.safetensors"]}}),
            "kit k",
        ),
        (
            lambda d: d.update(kits={"k": {"description": "", "weights": ["checkpoints/model.safetensors"]}}),
            "description",
        ),
        (lambda d: d.update(kits={"Bad Kit": {"description": "x", "weights": []}}), "kit names"),
        (lambda d: d.update(loaders={"MyLoader": {"model": "bad/folder"}}), "loader MyLoader"),
    ],
)
def test_invalid_document_parts_are_named(doc_change, words):
    doc = minimal()
    doc_change(doc)
    with pytest.raises(ManifestError, match=words):
        parse_manifest(doc)


def test_broken_json_gives_line_and_column(tmp_path):
    path = tmp_path / "m.json"
    path.write_text('{"schema_version": 1,\n "weights": [,]}')
    with pytest.raises(ManifestError, match=r"line 2 column"):
        load_manifest(path)


def test_user_manifest_merges_over_builtin(tmp_path):
    extra = minimal(name="my_lora.safetensors", folder="loras")
    extra["kits"] = {
        "sd15": {
            "description": "my sd15",
            "weights": ["loras/my_lora.safetensors", "checkpoints/v1-5-pruned-emaonly.safetensors"],
        },
    }
    extra["loaders"] = {"MyLoraLoader": {"lora": "loras"}}
    path = tmp_path / "extra.json"
    path.write_text(json.dumps(extra))
    merged = load_manifest(BUILTIN_MANIFEST, path)
    assert merged.find("my_lora.safetensors", "loras").size == 10
    assert [e.name for e in merged.kit_entries("sd15")] == [
        "my_lora.safetensors",
        "v1-5-pruned-emaonly.safetensors",
    ]
    assert merged.loaders["MyLoraLoader"] == {"lora": "loras"}
    assert "sdxl" in merged.kits  # the built-in kits stay


def test_user_manifest_is_validated_the_same_way(tmp_path):
    path = tmp_path / "extra.json"
    path.write_text(json.dumps(minimal(sha256="nothex")))
    with pytest.raises(ManifestError, match=r"extra.json.*'sha256'"):
        load_manifest(BUILTIN_MANIFEST, path)


@pytest.mark.parametrize("name", ["a.safetensors", "sdxl/b.safetensors", "x/y/z.pth"])
def test_safe_names(name):
    assert name_is_safe(name)


@pytest.mark.parametrize(
    "name",
    ["", "/abs.pth", "../up.pth", "a/../../b.pth", "a//b.pth", "C:/x.pth", "a\\b.pth", "./a.pth", " a.pth"],
)
def test_unsafe_names(name):
    assert not name_is_safe(name)


HF_URL = "https://huggingface.co/org/repo/resolve/main/model.safetensors"


@pytest.mark.parametrize("left_out", [{"size": None, "sha256": None}, {"sha256": None}, {"size": None}])
def test_a_hugging_face_entry_may_leave_size_and_sha256_to_the_host(left_out):
    doc = minimal(urls=[HF_URL, HF_URL.replace("huggingface.co", "hf.co")], **left_out)
    (entry,) = parse_manifest(doc).entries.values()
    assert entry.left_to_host and (entry.size, entry.sha256) == (
        doc["weights"][0]["size"],
        doc["weights"][0]["sha256"],
    )
    written = json.loads(parse_manifest(doc).dumps())["weights"][0]
    assert written["size"] == doc["weights"][0]["size"] and written["sha256"] == doc["weights"][0]["sha256"]


def test_absent_size_and_sha256_mean_the_host_states_them():
    doc = minimal(urls=[HF_URL])
    del doc["weights"][0]["size"], doc["weights"][0]["sha256"]
    (entry,) = parse_manifest(doc).entries.values()
    assert (entry.size, entry.sha256) == (None, None)


@pytest.mark.parametrize(
    "urls",
    [
        ["https://example.com/model.safetensors"],
        [HF_URL, "https://example.com/model.safetensors"],  # one source that states nothing is enough
        ["https://huggingface.co/org/repo/blob/main/model.safetensors"],  # a web page, not the file
        ["http://huggingface.co/org/repo/resolve/main/model.safetensors"],
        ["https://huggingface.co.evil.example/org/repo/resolve/main/model.safetensors"],
    ],
)
def test_only_hugging_face_resolve_urls_may_leave_the_hash_to_the_host(urls):
    with pytest.raises(ManifestError, match="Hugging Face resolve URL") as info:
        parse_manifest(minimal(urls=urls, sha256=None, size=None))
    assert info.value.field == "size"
