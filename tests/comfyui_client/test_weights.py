"""Weights a run needs: missing ones named, corrupt ones quarantined, fetched again and re-run."""

from __future__ import annotations

import shutil

import pytest

from comfyrun.errors import WeightCorruptError, WeightMissingError
from tests.comfyui_watch import MODELS, TINY, history, needs_own_server, upscale
from weightkit.errors import MissingWeightsError

pytestmark = pytest.mark.comfyui


def test_missing_weight_in_a_loader_comfyui_does_not_validate_fails_as_missing(comfy):
    with pytest.raises(WeightMissingError) as info:
        comfy.run(upscale("missing", model="nope.safetensors"), check_weights=False)
    assert (info.value.folder, info.value.name, info.value.node_id) == (
        "upscale_models",
        "nope.safetensors",
        "2",
    )


@needs_own_server
def test_missing_weight_is_caught_by_the_store_before_anything_is_queued(comfy):
    before = len(history(comfy))
    with pytest.raises(MissingWeightsError, match=r"nope\.safetensors"):
        comfy.run(upscale("missing-checked", model="nope.safetensors"))
    assert len(history(comfy)) == before


@needs_own_server
def test_corrupt_weight_is_quarantined_fetched_again_and_the_prompt_rerun(comfy):
    weights_dir = comfy.store.settings.weights_dir
    target = weights_dir / "upscale_models" / "fixme.safetensors"
    shutil.copyfile(MODELS / "broken_truncated.safetensors", target)
    (output,) = comfy.run(upscale("repaired", model="fixme.safetensors"), check_weights=False)
    assert output.path.is_file()
    assert target.read_bytes() == (MODELS / TINY).read_bytes()
    (quarantined,) = (weights_dir / ".weightkit" / "quarantine" / "upscale_models").glob(
        "fixme.safetensors.*"
    )
    assert quarantined.read_bytes() == (MODELS / "broken_truncated.safetensors").read_bytes()


@needs_own_server
def test_corrupt_weight_that_stays_corrupt_names_the_file_and_what_was_tried(comfy):
    # The published .pth is itself truncated: it verifies (its sha256 is the manifest's), ComfyUI still
    # cannot open it, and the error says so after one repair.
    weights_dir = comfy.store.settings.weights_dir
    shutil.copyfile(MODELS / "broken_truncated.pth", weights_dir / "upscale_models" / "stuck.pth")
    with pytest.raises(WeightCorruptError) as info:
        comfy.run(upscale("stuck", model="stuck.pth"))
    assert info.value.files == (("upscale_models", "stuck.pth"),)
    assert "PytorchStreamReader" in str(info.value) and "fetched again and verified" in str(info.value)


@needs_own_server
def test_corrupt_weight_whose_source_is_broken_too_is_not_installed(comfy):
    weights_dir = comfy.store.settings.weights_dir
    target = weights_dir / "upscale_models" / "stuck.safetensors"
    shutil.copyfile(MODELS / "broken_header.safetensors", target)
    with pytest.raises(WeightCorruptError) as info:
        comfy.run(upscale("stuck", model="stuck.safetensors"))
    assert "header too large" in str(info.value) and "Fetching it again failed" in str(info.value)
    assert not target.exists()  # quarantined, and the broken download was not put in its place
