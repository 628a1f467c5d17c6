"""Where ComfyUI looks: models/ with legacy names, extra_model_paths.yaml in ComfyUI's order, the weights
directory first, the output directory last; lookups by stat; the config the wrapper hands to ComfyUI."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from weightkit.errors import ExtraModelPathsError
from weightkit.folders import COMFYUI_FOLDERS
from weightkit.loaders import builtin_loader_map
from weightkit.manifest_file import load_manifest
from weightkit.modelpaths import ModelPaths, read_extra_model_paths, weight_folders, write_extra_model_paths
from weightkit.settings import BUILTIN_MANIFEST, WeightSettings

RECORDINGS = Path(__file__).resolve().parent / "reference" / "comfyui"
TINY = RECORDINGS / "models" / "tiny_compact_x2.safetensors"


def put(path: Path, data: bytes = b"w") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_models_folders_with_legacy_names_in_comfyui_order(tmp_path):
    paths = ModelPaths.build(tmp_path / "ComfyUI")
    models = tmp_path / "ComfyUI" / "models"
    output = tmp_path / "ComfyUI" / "output"
    assert paths.dirs("text_encoders") == (
        str(models / "text_encoders"),
        str(models / "clip"),
        str(output / "clip"),
    )
    assert paths.dirs("clip") == paths.dirs("text_encoders")
    assert paths.dirs("diffusion_models")[:2] == (str(models / "unet"), str(models / "diffusion_models"))
    assert paths.dirs("controlnet") == (str(models / "controlnet"), str(models / "t2i_adapter"))
    assert paths.dirs("upscale_models") == (str(models / "upscale_models"),)


def test_legacy_directory_is_found_and_unet_wins_over_diffusion_models(tmp_path):
    models = tmp_path / "ComfyUI" / "models"
    put(models / "clip" / "t5.safetensors")
    put(models / "unet" / "flux.safetensors", b"unet")
    put(models / "diffusion_models" / "flux.safetensors", b"diffusion_models")
    paths = ModelPaths.build(tmp_path / "ComfyUI")
    assert paths.find("text_encoders", "t5.safetensors") == models / "clip" / "t5.safetensors"
    assert paths.find("diffusion_models", "flux.safetensors") == models / "unet" / "flux.safetensors"


def test_recorded_extra_paths_priority_is_reproduced(tmp_path):
    """tests/reference/comfyui/extra_model_paths_test.json: is_default first, then models/, then the rest."""
    recorded = json.loads((RECORDINGS / "extra_model_paths_test.json").read_text())
    comfyui, extra = tmp_path / "ComfyUI", tmp_path / "extra_models"
    for source, target in [
        (TINY, comfyui / "models" / "upscale_models" / "tiny_compact_x2.safetensors"),
        (TINY, extra / "ups_default" / "tiny_compact_x2.safetensors"),
        (TINY, extra / "ups" / "tiny_compact_x2.safetensors"),
        (TINY, extra / "ups" / "extra_only.safetensors"),
    ]:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
    config = tmp_path / "extra_model_paths.yaml"
    config.write_text(
        f"others:\n  base_path: {extra}\n  upscale_models: ups\n  my_custom_folder: ups\n"
        f"defaults:\n  base_path: {extra}\n  is_default: true\n  upscale_models: ups_default\n"
    )
    paths = ModelPaths.build(comfyui, extra_configs=[config])

    def placeholder(directory: str) -> str:
        return directory.replace(str(extra), "<extra_models>").replace(str(comfyui), "<ComfyUI>")

    assert [placeholder(d) for d in paths.dirs("upscale_models")] == recorded["folder_paths_order"]
    winner = paths.find("upscale_models", "tiny_compact_x2.safetensors")
    assert placeholder(str(winner)) == "<extra_models>/ups_default/tiny_compact_x2.safetensors"
    assert recorded["<extra_models>/ups_default/tiny_compact_x2.safetensors"] == 1  # ComfyUI ran that copy
    assert "extra_only.safetensors" in paths.names("upscale_models")
    assert paths.names("my_custom_folder") == recorded["models_my_custom_folder"]


def test_later_is_default_config_goes_in_front_and_duplicates_are_moved_not_repeated(tmp_path):
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    first.write_text("a:\n  is_default: true\n  loras: /one\nb:\n  loras: /two\n")
    second.write_text(
        "c:\n  is_default: true\n  loras: /three\nd:\n  loras: /one\ne:\n  is_default: true\n  loras: /two\n"
    )
    paths = ModelPaths.build(tmp_path / "ComfyUI", extra_configs=[first, second])
    models = tmp_path / "ComfyUI" / "models"
    output = tmp_path / "ComfyUI" / "output"
    assert paths.dirs("loras") == ("/two", "/three", "/one", str(models / "loras"), str(output / "loras"))


def test_comfyui_own_extra_model_paths_yaml_is_loaded_before_the_given_configs(tmp_path):
    comfyui = tmp_path / "ComfyUI"
    comfyui.mkdir()
    (comfyui / "extra_model_paths.yaml").write_text("own:\n  is_default: true\n  vae: /own\n")
    given = tmp_path / "given.yaml"
    given.write_text("given:\n  is_default: true\n  vae: /given\n")
    paths = ModelPaths.build(comfyui, extra_configs=[given])
    assert paths.dirs("vae")[:2] == ("/given", "/own")


def test_weights_dir_is_searched_first_for_every_folder_and_output_last(tmp_path):
    config = tmp_path / "user.yaml"
    config.write_text("user:\n  is_default: true\n  checkpoints: /mnt/ckpt\n  ipadapter: /mnt/ipadapter\n")
    weights = tmp_path / "weights"
    paths = ModelPaths.build(
        tmp_path / "ComfyUI", extra_configs=[config], weights_dir=weights, output_dir="/out"
    )
    models = tmp_path / "ComfyUI" / "models"
    assert paths.dirs("checkpoints") == (
        str(weights / "checkpoints"),
        "/mnt/ckpt",
        str(models / "checkpoints"),
        "/out/checkpoints",
    )
    assert paths.dirs("ipadapter") == (str(weights / "ipadapter"), "/mnt/ipadapter")
    assert paths.dirs("my_nodes_folder") == (
        str(weights / "my_nodes_folder"),
        str(models / "my_nodes_folder"),
    )
    for folder in COMFYUI_FOLDERS:
        assert paths.dirs(folder)[0] == str(weights / folder)


@pytest.mark.parametrize(
    ("folder", "weights_dir", "searched"),
    [
        pytest.param("ipadapter", True, ["weights/ipadapter"], id="ipadapter-kept-as-registered"),
        pytest.param("instantid", True, ["weights/instantid"], id="instantid-kept-as-registered"),
        pytest.param(
            "ipadapter-flux", True, ["weights/ipadapter-flux"], id="ipadapter-flux-kept-as-registered"
        ),
        pytest.param("ipadapter", False, ["ComfyUI/models/ipadapter"], id="ipadapter-unregistered"),
        pytest.param("mmdets_bbox", True, ["weights/mmdets_bbox", "ComfyUI/models/mmdets/bbox"], id="impact"),
        pytest.param("ultralytics_segm", False, ["ComfyUI/models/ultralytics/segm"], id="subpack"),
        pytest.param(
            "animatediff_models", True, ["weights/animatediff_models", "ComfyUI/models/animatediff_models"]
        ),
    ],
)
def test_pack_folders_are_searched_where_their_packs_leave_them(tmp_path, folder, weights_dir, searched):
    """IPAdapter plus and InstantID keep a folder a config registered (the weights-dir config registers
    every pack folder), so `models/<folder>` is not searched then; Impact's `_bbox` folders live under
    `models/mmdets/`; other packs append `models/<folder>` after the configs' paths."""
    paths = ModelPaths.build(tmp_path / "ComfyUI", weights_dir=tmp_path / "weights" if weights_dir else None)
    assert paths.dirs(folder) == tuple(str(tmp_path / d) for d in searched)


def test_a_file_in_models_ipadapter_is_not_found_when_comfyui_would_not_search_there(tmp_path):
    models = tmp_path / "ComfyUI" / "models" / "ipadapter"
    models.mkdir(parents=True)
    (models / "ip.safetensors").write_bytes(b"x")
    config = tmp_path / "user.yaml"
    config.write_text(f"user:\n  ipadapter: {tmp_path / 'mine'}\n")
    assert (
        ModelPaths.build(tmp_path / "ComfyUI", extra_configs=[config]).locate("ipadapter", "ip.safetensors")
        is None
    )
    assert ModelPaths.build(tmp_path / "ComfyUI").locate("ipadapter", "ip.safetensors") is not None


def test_config_paths_multi_line_relative_legacy_and_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MODELS_ROOT", str(tmp_path / "root"))
    config_dir = tmp_path / "conf"
    config_dir.mkdir()
    config = config_dir / "extra.yaml"
    config.write_text(
        "a1111:\n"
        "  base_path: ~/webui\n"
        "  loras: |\n    models/Lora\n    models/LyCORIS\n"
        "  clip: models/clip/\n"
        "env:\n"
        "  base_path: $MODELS_ROOT\n"
        "  unet: unet\n"
        "relative_base:\n"
        "  base_path: ../shared\n"
        "  vae: vae\n"
        "no_base:\n"
        "  checkpoints: ckpts\n"
        "  vae_approx: /abs/approx\n"
        "empty_section:\n"
    )
    entries = [(folder, str(path), default) for folder, path, default in read_extra_model_paths(config)]
    home = tmp_path / "home"
    assert entries == [
        ("loras", str(home / "webui" / "models" / "Lora"), False),
        ("loras", str(home / "webui" / "models" / "LyCORIS"), False),
        ("clip", str(home / "webui" / "models" / "clip"), False),
        ("unet", str(tmp_path / "root" / "unet"), False),
        ("vae", str(tmp_path / "shared" / "vae"), False),
        ("checkpoints", str(config_dir / "ckpts"), False),
        ("vae_approx", "/abs/approx", False),
    ]
    paths = ModelPaths.build(tmp_path / "ComfyUI", extra_configs=[config])
    assert str(home / "webui" / "models" / "clip") in paths.dirs("text_encoders")
    assert str(tmp_path / "root" / "unet") in paths.dirs("diffusion_models")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("a: [", "not valid YAML", id="broken-yaml"),
        pytest.param("", "top level must be a mapping", id="empty-file"),
        pytest.param("- loras: x\n", "top level must be a mapping", id="top-level-list"),
        pytest.param("a: just text\n", "section 'a': must be a mapping", id="section-is-text"),
        pytest.param(
            "a:\n  loras:\n    - x\n    - y\n", "section 'a': the value of 'loras'", id="value-is-list"
        ),
        pytest.param(
            "a:\n  base_path: 3\n  loras: x\n", "section 'a': 'base_path' must be a path", id="base-path"
        ),
    ],
)
def test_config_comfyui_could_not_load_is_refused_naming_file_and_section(tmp_path, text, expected):
    config = tmp_path / "extra.yaml"
    config.write_text(text)
    with pytest.raises(ExtraModelPathsError, match=expected) as info:
        ModelPaths.build(tmp_path / "ComfyUI", extra_configs=[config])
    assert info.value.path == str(config)


def test_missing_config_file_is_refused(tmp_path):
    with pytest.raises(ExtraModelPathsError, match="cannot read"):
        read_extra_model_paths(tmp_path / "nope.yaml")


def test_find_follows_links_and_skips_dangling_links_and_directories(tmp_path):
    weights = tmp_path / "weights"
    models = tmp_path / "ComfyUI" / "models"
    real = put(tmp_path / "store" / "real.safetensors")
    (weights / "loras").mkdir(parents=True)
    (weights / "loras" / "linked.safetensors").symlink_to(real)
    (weights / "loras" / "dangling.safetensors").symlink_to(tmp_path / "gone.safetensors")
    (weights / "loras" / "adir.safetensors").mkdir()
    put(models / "loras" / "dangling.safetensors")
    put(models / "loras" / "adir.safetensors")
    put(models / "loras" / "sub" / "deep.safetensors")
    paths = ModelPaths.build(tmp_path / "ComfyUI", weights_dir=weights)
    assert paths.find("loras", "linked.safetensors") == weights / "loras" / "linked.safetensors"
    assert paths.find("loras", "dangling.safetensors") == models / "loras" / "dangling.safetensors"
    assert paths.find("loras", "adir.safetensors") == models / "loras" / "adir.safetensors"
    assert paths.find("loras", "sub/deep.safetensors") == models / "loras" / "sub" / "deep.safetensors"
    assert paths.find("loras", "nowhere.safetensors") is None
    located = paths.locate("loras", "linked.safetensors")
    assert located is not None and located[1].st_size == real.stat().st_size


def test_embeddings_are_found_without_extension_and_in_subfolders(tmp_path):
    embeddings = tmp_path / "ComfyUI" / "models" / "embeddings"
    put(embeddings / "EasyNegative.safetensors")
    put(embeddings / "EasyNegative.pt")
    put(embeddings / "styles" / "deep" / "Painterly.bin")
    paths = ModelPaths.build(tmp_path / "ComfyUI")
    assert paths.find("embeddings", "EasyNegative") == embeddings / "EasyNegative.safetensors"
    assert paths.find("embeddings", "EasyNegative.pt") == embeddings / "EasyNegative.pt"
    assert paths.find("embeddings", "Painterly") == embeddings / "styles" / "deep" / "Painterly.bin"
    assert paths.find("embeddings", "Nothing") is None


def test_names_lists_model_files_recursively_with_forward_slashes(tmp_path):
    loras = tmp_path / "ComfyUI" / "models" / "loras"
    put(loras / "a.safetensors")
    put(loras / "sdxl" / "b.pt")
    put(loras / "notes.txt")
    put(loras / ".git" / "c.safetensors")
    assert ModelPaths.build(tmp_path / "ComfyUI").names("loras") == ["a.safetensors", "sdxl/b.pt"]


def test_written_config_makes_comfyui_search_the_weights_dir_first_as_build_assumes(tmp_path):
    """The wrapper passes the user's config, then this one: both views of the search order must agree."""
    manifest = load_manifest(BUILTIN_MANIFEST)
    user = tmp_path / "user.yaml"
    user.write_text("user:\n  is_default: true\n  loras: /mnt/loras\nother:\n  vae: /mnt/vae\n")
    weights = tmp_path / "weights"
    written = write_extra_model_paths(
        tmp_path / "run" / "extra_model_paths.yaml", weights, weight_folders(manifest)
    )
    assert not list(written.parent.glob("*.tmp"))
    entries = read_extra_model_paths(written)
    assert all(default and path == weights / folder for folder, path, default in entries)
    as_comfyui = ModelPaths.build(tmp_path / "ComfyUI", extra_configs=[user, written])
    as_weightkit = ModelPaths.build(tmp_path / "ComfyUI", extra_configs=[user], weights_dir=weights)
    for folder in weight_folders(manifest):
        assert as_comfyui.dirs(folder) == as_weightkit.dirs(folder), folder


def test_weight_folders_cover_comfyui_loaders_and_manifest():
    manifest = load_manifest(BUILTIN_MANIFEST)
    folders = weight_folders(manifest)
    assert folders[: len(COMFYUI_FOLDERS)] == COMFYUI_FOLDERS
    needed = {f for inputs in builtin_loader_map().folders.values() for f in inputs.values()}
    needed |= {e.folder for e in manifest.entries.values()} | {"ipadapter"}
    assert needed <= set(folders)
    assert len(folders) == len(set(folders))


def test_from_settings_uses_the_user_config_then_the_weights_dir(tmp_path):
    config = tmp_path / "user.yaml"
    config.write_text("user:\n  is_default: true\n  vae: /mnt/vae\n")
    settings = WeightSettings(
        comfyui_path=tmp_path / "ComfyUI", weights_dir=tmp_path / "w", extra_model_paths=config
    )
    paths = ModelPaths.from_settings(settings)
    assert paths.dirs("vae")[:2] == (str(tmp_path / "w" / "vae"), "/mnt/vae")


def test_build_reads_configs_but_creates_nothing(tmp_path):
    ModelPaths.build(tmp_path / "ComfyUI", weights_dir=tmp_path / "weights")
    assert os.listdir(tmp_path) == []
