"""Every bundled example is an API-format workflow whose weights are all in the manifest."""

from __future__ import annotations

from pathlib import Path

import pytest

from weightkit import load_manifest, required_weights
from weightkit.settings import BUILTIN_MANIFEST

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

EXPECTED = {
    "sd15_txt2img.json": {
        "checkpoints/v1-5-pruned-emaonly.safetensors",
        "vae/vae-ft-mse-840000-ema-pruned.safetensors",
        "embeddings/EasyNegative.safetensors",
    },
    "sd15_img2img.json": {"checkpoints/v1-5-pruned-emaonly.safetensors"},
    "sd15_lcm_lora.json": {
        "checkpoints/v1-5-pruned-emaonly.safetensors",
        "loras/lcm-lora-sdv1-5.safetensors",
    },
    "sdxl_txt2img.json": {
        "checkpoints/sd_xl_base_1.0.safetensors",
        "checkpoints/sd_xl_refiner_1.0.safetensors",
        "vae/sdxl_vae.safetensors",
    },
    "flux_schnell_txt2img.json": {
        "diffusion_models/flux1-schnell.safetensors",
        "text_encoders/t5xxl_fp8_e4m3fn.safetensors",
        "text_encoders/clip_l.safetensors",
        "vae/ae.safetensors",
    },
    "upscale_realesrgan.json": {"upscale_models/RealESRGAN_x4plus.pth"},
}


def test_every_example_has_expectations():
    assert {path.name for path in EXAMPLES.glob("*.json")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_resolves_to_manifest_weights(name):
    manifest = load_manifest(BUILTIN_MANIFEST)
    refs = required_weights((EXAMPLES / name).read_text(), manifest)
    assert all(ref.entry is not None for ref in refs), [ref.name for ref in refs if ref.entry is None]
    assert {ref.entry.key for ref in refs} == EXPECTED[name]


@pytest.mark.parametrize("kit", ["sd15", "sdxl", "flux", "upscale"])
def test_each_kit_example_is_covered_by_its_kit(kit):
    manifest = load_manifest(BUILTIN_MANIFEST)
    example = {
        "sd15": "sd15_txt2img.json",
        "sdxl": "sdxl_txt2img.json",
        "flux": "flux_schnell_txt2img.json",
        "upscale": "upscale_realesrgan.json",
    }[kit]
    kit_keys = {entry.key for entry in manifest.kit_entries(kit)}
    needed = EXPECTED[example] - {"embeddings/EasyNegative.safetensors"}  # fetched on demand, 25 kB
    assert needed <= kit_keys
