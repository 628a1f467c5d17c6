"""The local check: present / missing / wrong size by stat alone, sha256 confirmed once and then trusted
while unchanged, and a missing-weights error a user can act on."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from weightkit.check import CheckReport, check_weights, missing_weights_error, verify_present
from weightkit.errors import MissingWeightsError
from weightkit.extract import WeightRef, required_weights
from weightkit.manifest_file import parse_manifest
from weightkit.modelpaths import ModelPaths
from weightkit.verified import VerifiedRecords

BASE = b"base checkpoint bytes"
STYLE = b"style lora"
NEG = b"negative embedding"
SPARSE_SIZE = 1 << 40  # 1 TB, sparse: reading it would take far longer than the test timeout


def entry(folder: str, name: str, data: bytes, **extra) -> dict:
    return {
        "name": name,
        "folder": folder,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "urls": [f"https://example.com/{name}"],
        "license": extra.pop("license", "mit"),
        "non_commercial": extra.pop("non_commercial", False),
        "gated": extra.pop("gated", False),
        **extra,
    }


MANIFEST = parse_manifest(
    {
        "schema_version": 1,
        "kits": {
            "base": {"description": "the base", "weights": ["checkpoints/base.safetensors"]},
            "everything": {
                "description": "all",
                "weights": ["checkpoints/base.safetensors", "loras/style.safetensors"],
            },
        },
        "weights": [
            entry("checkpoints", "base.safetensors", BASE),
            entry(
                "loras",
                "style.safetensors",
                STYLE,
                aliases=["style_v1.safetensors"],
                gated=True,
                non_commercial=True,
                license="flux-1-dev-non-commercial-license",
            ),
            entry("embeddings", "Neg.safetensors", NEG),
            {**entry("checkpoints", "huge.safetensors", b""), "size": SPARSE_SIZE, "sha256": "0" * 64},
        ],
    }
)

WORKFLOW = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "base.safetensors"}},
    "5": {"class_type": "LoraLoader", "inputs": {"lora_name": "style_v1.safetensors", "model": ["4", 0]}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry, embedding:Neg", "clip": ["5", 1]}},
    "7": {"class_type": "LoraLoader", "inputs": {"lora_name": "mine.safetensors", "model": ["5", 0]}},
    "8": {"class_type": "SomeCustomNode", "inputs": {"model": "unknown_thing.pt"}},
}


@pytest.fixture
def weights(tmp_path) -> Path:
    return tmp_path / "weights"


@pytest.fixture
def paths(tmp_path, weights) -> ModelPaths:
    return ModelPaths.build(tmp_path / "ComfyUI", weights_dir=weights)


@pytest.fixture
def records(weights) -> VerifiedRecords:
    return VerifiedRecords(weights / ".weightkit" / "verified")


def put(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def put_all(weights: Path, tmp_path: Path) -> None:
    put(weights / "checkpoints" / "base.safetensors", BASE)
    put(weights / "loras" / "style_v1.safetensors", STYLE)
    put(weights / "embeddings" / "Neg.safetensors", NEG)
    put(tmp_path / "ComfyUI" / "models" / "loras" / "mine.safetensors", b"any size will do")


def test_all_present_is_ok_and_unplaced_names_do_not_count(weights, paths, tmp_path):
    put_all(weights, tmp_path)
    report = check_weights(required_weights(WORKFLOW, MANIFEST), paths)
    assert report.ok and not report.missing and not report.wrong_size
    assert [(f.ref.name, f.path, f.size, f.verified) for f in report.present] == [
        ("base.safetensors", weights / "checkpoints" / "base.safetensors", len(BASE), False),
        ("style_v1.safetensors", weights / "loras" / "style_v1.safetensors", len(STYLE), False),
        ("Neg", weights / "embeddings" / "Neg.safetensors", len(NEG), False),
        ("mine.safetensors", tmp_path / "ComfyUI" / "models" / "loras" / "mine.safetensors", 16, False),
    ]
    assert [ref.name for ref in report.unplaced] == ["unknown_thing.pt"]


def test_check_never_reads_a_file(weights, paths):
    huge = weights / "checkpoints" / "huge.safetensors"
    huge.parent.mkdir(parents=True)
    with open(huge, "wb") as handle:
        handle.truncate(SPARSE_SIZE)
    workflow = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "huge.safetensors"}}}
    report = check_weights(required_weights(workflow, MANIFEST), paths)
    assert report.ok and report.present[0].size == SPARSE_SIZE


def test_missing_wrong_size_and_to_fetch(weights, paths, tmp_path):
    put(weights / "checkpoints" / "base.safetensors", BASE[:-3])  # a partial download
    report = check_weights(required_weights(WORKFLOW, MANIFEST), paths)
    assert not report.ok
    assert [(f.ref.name, f.size) for f in report.wrong_size] == [("base.safetensors", len(BASE) - 3)]
    assert [r.name for r in report.missing] == ["style_v1.safetensors", "Neg", "mine.safetensors"]
    assert [r.name for r in report.to_fetch] == ["style_v1.safetensors", "Neg", "base.safetensors"]
    assert [r.name for r in report.unfetchable] == ["mine.safetensors"]


def test_ref_without_entry_only_needs_to_exist(paths, tmp_path):
    put(tmp_path / "ComfyUI" / "models" / "vae" / "own.safetensors", b"")
    workflow = {"1": {"class_type": "VAELoader", "inputs": {"vae_name": "own.safetensors"}}}
    report = check_weights(required_weights(workflow, MANIFEST), paths)
    assert report.ok and report.present[0].size == 0


def test_verified_once_then_trusted_while_unchanged_and_rehashed_when_changed(
    weights, paths, records, tmp_path
):
    put_all(weights, tmp_path)
    refs = required_weights(WORKFLOW, MANIFEST)
    verified = verify_present(check_weights(refs, paths, records), records)
    assert verified.ok and [f.verified for f in verified.present] == [
        True,
        True,
        True,
        False,
    ]  # mine: no entry

    # Same size and mtime, different bytes: the record stands, so the file is not read again.
    base = weights / "checkpoints" / "base.safetensors"
    stat = base.stat()
    base.write_bytes(BASE.upper())
    os.utime(base, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again = check_weights(refs, paths, records)
    assert again.present[0].verified
    assert verify_present(again, records).ok

    # A new mtime invalidates the record: the file is hashed again and found wrong.
    os.utime(base, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    changed = check_weights(refs, paths, records)
    assert not changed.present[0].verified
    rechecked = verify_present(changed, records)
    assert not rechecked.ok and [f.ref.name for f in rechecked.wrong_hash] == ["base.safetensors"]
    # Its record now holds the wrong hash: the next check knows without reading.
    assert [f.ref.name for f in check_weights(refs, paths, records).wrong_hash] == ["base.safetensors"]


def test_missing_weights_error_is_one_actionable_paragraph(weights, paths, tmp_path):
    put(weights / "checkpoints" / "base.safetensors", b"short")
    put(weights / "loras" / "mime.safetensors", b"a near name on disk")
    report = check_weights(required_weights(WORKFLOW, MANIFEST), paths)
    error = missing_weights_error(report, paths, MANIFEST)
    message = str(error)
    assert isinstance(error, MissingWeightsError) and isinstance(error, FileNotFoundError)
    assert "\n" not in message
    assert message.startswith("This workflow needs 4 weight files that are not usable here.")
    # the fetchable, gated, non-commercial alias
    assert (
        "'style_v1.safetensors' (loras, 10 B), asked for by node 5 (LoraLoader) input 'lora_name'" in message
    )
    assert "the manifest has it as loras/style.safetensors, so it can be fetched" in message
    assert "gated: set HF_TOKEN" in message
    assert "(flux-1-dev-non-commercial-license) is non-commercial" in message
    assert "BASE_MODEL_KIT=everything" in message
    assert "BASE_MODEL_KIT=base" in message  # the smallest kit holding base.safetensors
    # the embedding, found by its name without extension
    assert "'Neg' (embeddings, 18 B), asked for by node 6 (CLIPTextEncode) input 'text'" in message
    # the unknown file: a typo, with the near name on disk, where to put it, and where ComfyUI looked
    assert "'mine.safetensors' (loras), asked for by node 7 (LoraLoader) input 'lora_name'" in message
    assert "cannot be fetched" in message and "'mime.safetensors' (on disk)" in message
    assert f"Put the file at {weights / 'loras' / 'mine.safetensors'}" in message
    assert f"Searched: {weights / 'loras'}, {tmp_path / 'ComfyUI' / 'models' / 'loras'}" in message
    # the partial file
    assert "is 5 B (5 bytes) where the manifest says 21 B (21 bytes)" in message
    assert [r.name for r in error.missing] == ["style_v1.safetensors", "Neg", "mine.safetensors"]
    assert [f.ref.name for f in error.wrong_size] == ["base.safetensors"]


def test_near_names_come_from_the_manifest_too(paths):
    workflow = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "bose.safetensors"}}}
    report = check_weights(required_weights(workflow, MANIFEST), paths)
    message = str(missing_weights_error(report, paths, MANIFEST))
    assert "Did you mean 'base.safetensors' (in the manifest)?" in message


def test_name_the_manifest_knows_in_another_folder_is_pointed_out(paths):
    workflow = {"1": {"class_type": "VAELoader", "inputs": {"vae_name": "base.safetensors"}}}
    report = check_weights(required_weights(workflow, MANIFEST), paths)
    assert "The manifest knows this name in checkpoints, not vae" in str(
        missing_weights_error(report, paths, MANIFEST)
    )


def test_single_missing_file_reads_in_the_singular(paths):
    ref = WeightRef("x.safetensors", "loras", "3", "LoraLoader", "lora_name")
    message = str(missing_weights_error(CheckReport(missing=(ref,)), paths))
    assert message.startswith(
        "This workflow needs 1 weight file that is not usable here. (1) 'x.safetensors'"
    )


def test_a_weight_whose_host_states_its_hash_is_present_at_any_size_and_verified_by_a_host_record(
    paths, weights, records
):
    hosted = {**entry("loras", "hosted.safetensors", b""), "size": None, "sha256": None}
    hosted["urls"] = ["https://huggingface.co/org/repo/resolve/main/hosted.safetensors"]
    manifest = parse_manifest({"schema_version": 1, "weights": [hosted]})
    refs = required_weights(
        {"1": {"class_type": "LoraLoader", "inputs": {"lora_name": "hosted.safetensors"}}}, manifest
    )
    assert check_weights(refs, paths).missing == tuple(refs)
    path = put(weights / "loras" / "hosted.safetensors", b"what the host sent")
    report = check_weights(refs, paths, records)
    assert report.ok and [f.verified for f in report.present] == [False]
    digest = hashlib.sha256(b"what the host sent").hexdigest()
    records.record(path, digest)  # hashed with nothing to compare against: no one vouches for it
    assert [f.verified for f in check_weights(refs, paths, records).present] == [False]
    records.record(path, digest, source="huggingface")  # as the downloader does after matching the host
    (found,) = check_weights(refs, paths, records).present
    assert found.verified
    assert verify_present(check_weights(refs, paths, records), records, rehash=True).present == (found,)


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("sd_xl_base_1.0.ckpt", "sd_xl_base_1.0.safetensors"),  # another extension
        ("sd_xl_base_1_0.safetensors", "sd_xl_base_1.0.safetensors"),  # a typo
    ],
)
def test_an_unknown_name_gets_near_names_from_the_catalog_and_the_add_command(paths, written, meant):
    from weightkit.manifest_file import load_manifest
    from weightkit.settings import BUILTIN_MANIFEST

    catalog = load_manifest(BUILTIN_MANIFEST)
    workflow = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": written}}}
    report = check_weights(required_weights(workflow, catalog), paths)
    message = str(missing_weights_error(report, paths, catalog))
    assert f"Did you mean '{meant}' (in the manifest)" in message
    assert f"python -m weightkit add <its URL> --folder checkpoints --name {written}" in message


def test_a_rehash_of_a_weight_the_host_vouched_for_compares_with_the_recorded_host_sha256(
    paths, weights, records
):
    hosted = {**entry("loras", "hosted.safetensors", b""), "size": None, "sha256": None}
    hosted["urls"] = ["https://huggingface.co/org/repo/resolve/main/hosted.safetensors"]
    manifest = parse_manifest({"schema_version": 1, "weights": [hosted]})
    refs = [WeightRef.of_entry(manifest.entries["loras/hosted.safetensors"])]
    data = b"what the host sent"
    path = put(weights / "loras" / "hosted.safetensors", data)
    records.record(path, hashlib.sha256(data).hexdigest(), source="huggingface")
    (good,) = verify_present(check_weights(refs, paths, records), records, rehash=True).present
    assert good.verified and records.lookup_record(path).source == "huggingface"  # still vouched after
    stat = path.stat()
    path.write_bytes(b"X" + data[1:])  # one byte flipped, same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the record still matches size and mtime
    assert [f.verified for f in check_weights(refs, paths, records).present] == [True]
    rehashed = verify_present(check_weights(refs, paths, records), records, rehash=True)
    assert rehashed.present == () and [f.path for f in rehashed.wrong_hash] == [path]
    assert [f.verified for f in check_weights(refs, paths, records).present] == [False]  # no longer vouched
