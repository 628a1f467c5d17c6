"""validate_implementation.py passes on this checkout and fails, naming the check, when something is wrong."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def validate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "validate_implementation.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_this_checkout_passes_every_check():
    result = validate()
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok    ") == 6 and "6 of 6 checks passed" in result.stdout


def test_a_bad_digest_in_the_manifest_fails_naming_the_entry(tmp_path):
    manifest = json.loads((ROOT / "weights_manifest.json").read_text())
    manifest["weights"][0]["sha256"] = "not-a-digest"
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    result = validate("--manifest", str(path))
    assert result.returncode == 1
    assert "FAIL  weights manifest" in result.stdout and "sha256" in result.stdout


def test_an_example_naming_an_unknown_weight_fails(tmp_path):
    (tmp_path / "bad.json").write_text(
        json.dumps(
            {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "nowhere.safetensors"}}}
        )
    )
    result = validate("--examples", str(tmp_path))
    assert result.returncode == 1 and "nowhere.safetensors" in result.stdout


def test_a_cog_yaml_cog_would_refuse_fails(tmp_path):
    path = tmp_path / "cog.yaml"
    path.write_text("build:\n  gpu: true\npredict: predict.py:Predictor\n")  # python_version is required
    result = validate("--cog-yaml", str(path))
    assert result.returncode == 1 and "FAIL  cog.yaml" in result.stdout


def test_a_bad_commit_in_the_custom_node_lock_fails_naming_the_pack(tmp_path):
    lock = json.loads((ROOT / "custom_nodes.json").read_text())
    lock["packs"][1]["commit"] = "v1.0"
    path = tmp_path / "custom_nodes.json"
    path.write_text(json.dumps(lock))
    result = validate("--custom-nodes", str(path))
    assert result.returncode == 1
    assert (
        "FAIL  custom nodes" in result.stdout
        and f"pack {lock['packs'][1]['name']}, field 'commit'" in result.stdout
    )


def test_a_lock_out_of_canonical_form_fails(tmp_path):
    path = tmp_path / "custom_nodes.json"
    path.write_text(json.dumps(json.loads((ROOT / "custom_nodes.json").read_text())))
    result = validate("--custom-nodes", str(path))
    assert result.returncode == 1 and "not in canonical form" in result.stdout


def test_a_lock_that_would_not_install_the_ipadapter_kits_pack_fails(tmp_path):
    lock = json.loads((ROOT / "custom_nodes.json").read_text())
    for pack in lock["packs"]:
        if pack["name"] == "ComfyUI_IPAdapter_plus":
            pack["install"] = False
    path = tmp_path / "custom_nodes.json"
    path.write_text(json.dumps(lock, indent=2, ensure_ascii=False) + "\n")
    result = validate("--custom-nodes", str(path))
    assert result.returncode == 1
    assert "kit ipadapter-sd15 needs ComfyUI_IPAdapter_plus, which the lock does not install by default" in (
        result.stdout
    )
