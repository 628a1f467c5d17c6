"""Cog's `weights` tar installed into the weights directory: legacy folder names land where ComfyUI (and
the local check) look for them, and a member under `.weightkit/` refuses the whole archive."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from tests.downloadkit import fast_settings
from weightkit.errors import UnsafeArchiveError
from weightkit.settings import WeightSettings
from weightkit.store import WeightStore

DATA = b"weights from a trained model"


def tar_of(path: Path, members: list[str]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name in members:
            info = tarfile.TarInfo(name)
            info.size = len(DATA)
            tar.addfile(info, io.BytesIO(DATA))
    return path


@pytest.fixture
def store(tmp_path) -> WeightStore:
    settings = WeightSettings(
        comfyui_path=tmp_path / "ComfyUI", weights_dir=tmp_path / "weights", download=fast_settings()
    )
    return WeightStore(settings)


@pytest.mark.parametrize(
    ("member", "folder", "node", "field"),
    [
        ("clip/mine.safetensors", "text_encoders", "CLIPLoader", "clip_name"),
        ("models/clip/mine.safetensors", "text_encoders", "CLIPLoader", "clip_name"),
        ("unet/mine.safetensors", "diffusion_models", "UNETLoader", "unet_name"),
        ("models/unet/mine.safetensors", "diffusion_models", "UNETLoader", "unet_name"),
        ("loras/mine.safetensors", "loras", "LoraLoaderModelOnly", "lora_name"),
    ],
)
def test_a_member_in_a_legacy_folder_lands_in_the_folder_comfyui_means_and_is_found(
    store, tmp_path, member, folder, node, field
):
    (installed,) = store.install_archive(str(tar_of(tmp_path / "weights.tar", [member])))
    assert installed == tmp_path / "weights" / folder / "mine.safetensors" and installed.read_bytes() == DATA
    assert store.check({"1": {"class_type": node, "inputs": {field: "mine.safetensors"}}}).ok


@pytest.mark.parametrize("member", [".weightkit/verified/0123.json", "models/.weightkit/verified/0123.json"])
def test_a_member_under_the_state_folder_refuses_the_archive_with_nothing_installed(store, tmp_path, member):
    archive = tar_of(tmp_path / "weights.tar", ["loras/mine.safetensors", member])
    with pytest.raises(UnsafeArchiveError, match=r"\.weightkit") as caught:
        store.install_archive(str(archive))
    assert caught.value.member == ".weightkit/verified/0123.json"
    assert not (tmp_path / "weights" / "loras").exists()
    assert not (tmp_path / "weights" / ".weightkit" / "verified").exists()
