"""The built-in catalog's URLs name the files their entries say: a typo in a URL's file name fails
`validate_implementation.py`, naming the entry, while a deliberate rename passes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WAN = "diffusion_models/wan2.1_t2v_14B_fp16.safetensors"


def validate_manifest(manifest: dict, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(ROOT / "validate_implementation.py"), "--manifest", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def catalog() -> dict:
    return json.loads((ROOT / "weights_manifest.json").read_text(encoding="utf-8"))


def with_url(manifest: dict, key: str, url: str) -> dict:
    for entry in manifest["weights"]:
        if f"{entry['folder']}/{entry['name']}" == key:
            entry["urls"] = [url]
            return manifest
    raise LookupError(key)


def test_the_wan_t2v_fp16_url_names_the_public_file():
    (wan,) = [e for e in catalog()["weights"] if f"{e['folder']}/{e['name']}" == WAN]
    assert wan["urls"] == [
        "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/"
        "split_files/diffusion_models/wan2.1_t2v_14B_fp16.safetensors"
    ]


@pytest.mark.parametrize(
    ("file", "says"),
    [
        ("wan2.1_t2v_14B_fp,16.safetensors", "characters no weight name has"),
        ("wan2.1_t2v_14B_fp61.safetensors", "nearly, not exactly"),
        ("wan2.1_t2v_14B_fp16.ckpt", "another extension"),
    ],
)
def test_a_typo_in_a_url_file_name_fails_naming_the_entry(tmp_path, file, says):
    url = f"https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files/{file}"
    result = validate_manifest(with_url(catalog(), WAN, url), tmp_path)
    assert result.returncode == 1
    assert "FAIL  weights manifest" in result.stdout and WAN in result.stdout and says in result.stdout


@pytest.mark.parametrize(
    "file",
    [
        "diffusion_pytorch_model.safetensors",
        "wan2.1_t2v_14B.safetensors",  # a rename that keeps most of the name: five characters apart
        "wan2.1_t2v_14B_fp%31%36.safetensors",  # percent-encoded, it is the entry's own name
    ],
)
def test_a_url_file_saved_under_another_name_is_a_rename_not_a_typo(tmp_path, file):
    url = f"https://huggingface.co/org/repo/resolve/main/{file}"
    result = validate_manifest(with_url(catalog(), WAN, url), tmp_path)
    assert "ok    weights manifest" in result.stdout, result.stdout
