"""custom_nodes.json: validated like the manifest (errors name pack and field), byte-stable, and what it
means for weights (a manifest fragment, the environment for ComfyUI, folders kept elsewhere)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from nodekit.errors import LockError, UnknownPackError
from nodekit.lock import load_lock, parse_lock
from nodekit.lockparse import expand_inputs
from nodekit.settings import BUILTIN_LOCK
from weightkit.extract import required_weights
from weightkit.manifest_file import load_manifest
from weightkit.settings import BUILTIN_MANIFEST

COMMIT = "0123456789abcdef0123456789abcdef01234567"
SHA = "ab" * 32
WEIGHT = {
    "name": "tiny.safetensors",
    "folder": "tiny_models",
    "size": 12,
    "sha256": SHA,
    "urls": ["https://example.com/tiny.safetensors"],
    "license": "mit",
    "non_commercial": False,
    "gated": False,
}


CLONE = {"path": "sub", "repository": "https://github.com/t/s.git", "commit": COMMIT}


def pack(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": "tiny-pack",
        "repository": "https://github.com/test/tiny-pack.git",
        "commit": COMMIT,
        "install": True,
    }
    return {**base, **fields}


def lock_of(*packs: dict[str, object]) -> dict[str, object]:
    return {"schema_version": 1, "packs": list(packs)}


def error_for(data: object) -> LockError:
    with pytest.raises(LockError) as caught:
        parse_lock(data, source="custom_nodes.json")
    return caught.value


# ---- the committed lock --------------------------------------------------------------------------------


def test_the_committed_lock_loads_and_is_in_canonical_form():
    lock = load_lock(BUILTIN_LOCK)
    assert lock.dumps() == BUILTIN_LOCK.read_text(encoding="utf-8")
    assert len(lock.packs) >= 12 and lock.comfyui_commit == "a125cd84b054a57729b5eecab930ca9408719832"


def test_the_committed_lock_has_the_packs_the_issue_names_and_the_ipadapter_kits_pack_installs():
    lock = load_lock(BUILTIN_LOCK)
    for name in (
        "ComfyUI_IPAdapter_plus",
        "comfyui_controlnet_aux",
        "ComfyUI-Impact-Pack",
        "ComfyUI_essentials",
        "was-node-suite-comfyui",
        "rgthree-comfy",
        "ComfyUI-KJNodes",
        "ComfyUI-VideoHelperSuite",
        "ComfyUI-Advanced-ControlNet",
        "ComfyUI-AnimateDiff-Evolved",
        "ComfyUI_UltimateSDUpscale",
        "ComfyUI-Custom-Scripts",
    ):
        assert lock.pack(name).repository.startswith("https://github.com/")
    assert lock.pack("ComfyUI_IPAdapter_plus") in lock.default_selection()


def test_the_committed_lock_merges_over_the_weights_manifest():
    merged = load_manifest(BUILTIN_MANIFEST).merged(load_lock(BUILTIN_LOCK).as_manifest())
    assert merged.loader_map.folder("IPAdapterModelLoader", "ipadapter_file") == "ipadapter"
    assert merged.loader_map.folder("LoRA Stacker", "lora_name_50") == "loras"
    assert merged.loader_map.folder("Lora Loader Stack (rgthree)", "lora_04") == "loras"
    assert "ipadapter" in merged.folders and "ultralytics" in merged.folders
    assert merged.needs["OpenposePreprocessor"] == (
        "annotators/lllyasviel/Annotators/body_pose_model.pth",
        "annotators/lllyasviel/Annotators/hand_pose_model.pth",
        "annotators/lllyasviel/Annotators/facenet.pth",
    )
    entry = merged.entries["annotators/lllyasviel/Annotators/facenet.pth"]
    assert entry.size is None and entry.urls[0].startswith("https://huggingface.co/lllyasviel/Annotators/")


def test_the_committed_lock_names_the_weight_each_preprocessor_choice_loads():
    merged = load_manifest(BUILTIN_MANIFEST).merged(load_lock(BUILTIN_LOCK).as_manifest())
    inputs = {"bbox_detector": "yolo_nas_s_fp16.onnx", "pose_estimator": "dw-ll_ucoco.onnx"}
    workflow = {
        "4": {"class_type": "DWPreprocessor", "inputs": inputs},
        "5": {"class_type": "Metric3D-NormalMapPreprocessor", "inputs": {"backbone": "vit-large"}},
        "6": {"class_type": "AnimalPosePreprocessor", "inputs": {"bbox_detector": "None"}},
    }
    assert sorted(ref.entry.key for ref in required_weights(workflow, merged) if ref.entry) == [
        "annotators/JUGGHM/Metric3D/metric_depth_vit_large_800k.pth",
        "annotators/hr16/UnJIT-DWPose/dw-ll_ucoco.onnx",
        "annotators/hr16/yolo-nas-fp16/yolo_nas_s_fp16.onnx",
    ]


def test_the_committed_lock_points_controlnet_aux_downloads_into_the_weights_dir(tmp_path):
    env = load_lock(BUILTIN_LOCK).comfyui_env(tmp_path / "weights")
    assert env["AUX_ANNOTATOR_CKPTS_PATH"] == str(tmp_path / "weights" / "annotators")


# ---- round trips -------------------------------------------------------------------------------------------


def test_dumps_is_byte_stable_sorted_and_round_trips():
    other = pack(name="a-pack", repository="https://github.com/test/a-pack.git", install=False)
    lock = parse_lock(
        lock_of(pack(weights=[WEIGHT], loaders={"TinyLoader": {"model": "tiny_models"}}), other)
    )
    assert [p.name for p in lock.packs] == ["a-pack", "tiny-pack"]
    text = lock.dumps()
    assert parse_lock(json.loads(text)).dumps() == text
    assert list(json.loads(text)["packs"][1]) == [
        "name",
        "repository",
        "commit",
        "install",
        "loaders",
        "weights",
    ]


def test_a_weight_target_and_folder_path_survive_a_round_trip():
    data = lock_of(
        pack(
            weights=[{**WEIGHT, "target": "models/tiny/tiny.safetensors"}],
            folders={
                "tiny_models": {"extensions": [".safetensors"]},
                "tiny_bbox": {"path": "tiny/bbox", "extensions": []},
            },
        )
    )
    lock = parse_lock(data)
    assert lock.targets() == {"tiny_models/tiny.safetensors": "models/tiny/tiny.safetensors"}
    assert lock.folder_paths() == {"tiny_bbox": "tiny/bbox"}
    assert lock.as_manifest().folders == (
        "tiny_models",
    )  # tiny_bbox lives elsewhere: not <weights>/tiny_bbox
    assert parse_lock(json.loads(lock.dumps())).targets() == lock.targets()


# ---- validation: each error names the pack and the field ----------------------------------------------


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"commit": "main"}, "commit", "40-character"),
        ({"commit": COMMIT.upper()}, "commit", "40-character"),
        ({"repository": "git@github.com:test/x.git"}, "repository", "https://"),
        ({"name": "../escape"}, "name", "directory name"),
        ({"install": "yes"}, "install", "true"),
        ({"requirements": "numpy"}, "requirements", "list"),
        ({"loaders": {"TinyLoader": {"model": "bad folder"}}}, "loaders", "model folder"),
        ({"loaders": {"TinyLoader": {"lora_*": "loras"}}}, "loaders", "numbered"),
        ({"env": {"lower": "x"}}, "env", "environment variable"),
        ({"env": {"X_PATH": "{home}/x"}}, "env", "placeholder"),
        (
            {"needs": {"TinyRunner": ["tiny_models/absent.safetensors"]}},
            "needs",
            "not one of this pack's weights",
        ),
        (
            {"chosen": {"TinyPicker": {"preset": {"big": "tiny_models/absent.safetensors"}}}},
            "chosen",
            "not one of this pack's weights",
        ),
        ({"chosen": {"TinyPicker": {"preset": ["tiny.safetensors"]}}}, "chosen", "each value"),
        ({"folders": {"tiny": {"path": "../out", "extensions": []}}}, "folders", "relative directory"),
        ({"clones": [{"path": "sub", "repository": "https://github.com/t/s.git"}]}, "clones", "exactly"),
        ({"clones": [dict(CLONE, path="/abs/sub")]}, "clones", "relative path inside the pack"),
        ({"clones": [dict(CLONE, path="../sub")]}, "clones", "relative path inside the pack"),
        ({"clones": [dict(CLONE, path=".git/hooks")]}, "clones", "inside a .git directory"),
        ({"clones": [dict(CLONE, path="lib/.GIT")]}, "clones", "inside a .git directory"),
        ({"clones": [CLONE, dict(CLONE, commit="f" * 40)]}, "clones", "the path of two clones"),
        ({"surprise": 1}, "surprise", "unknown field"),
    ],
)
def test_a_bad_field_is_named_with_its_pack(change, field, words):
    error = error_for(lock_of(pack(**change)))
    named = change.get("name", "tiny-pack")  # a pack is named as the lock writes it
    assert (error.pack, error.field, error.path) == (named, field, "custom_nodes.json")
    assert words in str(error) and f"pack {named}" in str(error) and f"field '{field}'" in str(error)


def test_a_bad_weight_is_checked_by_the_manifest_parser_and_named_with_its_index():
    weight = {**WEIGHT, "sha256": "nope"}
    error = error_for(lock_of(pack(weights=[WEIGHT | {"name": "ok.safetensors"}, weight])))
    assert error.pack == "tiny-pack" and error.field == "weights[1] (tiny_models/tiny.safetensors).sha256"
    assert "64 lowercase hexadecimal" in str(error)


def test_a_weight_may_leave_size_and_sha256_to_hugging_face_only():
    on_hf = {
        **WEIGHT,
        "size": None,
        "sha256": None,
        "urls": ["https://huggingface.co/t/r/resolve/main/tiny.safetensors"],
    }
    assert parse_lock(lock_of(pack(weights=[on_hf]))).packs[0].weights[0].entry.size is None
    error = error_for(lock_of(pack(weights=[{**WEIGHT, "size": None}])))
    assert error.field is not None and error.field.endswith(".size") and "Hugging Face" in str(error)


def test_a_weight_with_an_extension_its_folder_does_not_list_is_refused():
    data = lock_of(pack(weights=[WEIGHT], folders={"tiny_models": {"extensions": [".onnx"]}}))
    error = error_for(data)
    assert error.field == "weights" and "only .onnx files" in str(error)


@pytest.mark.parametrize(
    ("first", "second", "decode"),
    [("tiny-pack", "tiny-pack", False), ("a", "a", True), ("tiny-pack", "Tiny-Pack", False)],
    ids=["one string object", "one-letter names from JSON", "another case"],
)
def test_two_packs_with_one_name_are_refused_whatever_the_string_objects(first, second, decode):
    # equal names that are one object (a literal, a one-letter string) were missed by an identity check
    data = lock_of(pack(name=first), pack(name=second, repository="https://x.org/a.git"))
    error = error_for(json.loads(json.dumps(data)) if decode else data)
    assert (error.pack, error.field) == (second, "name") and f"used twice ({first})" in str(error)


def test_two_packs_claiming_one_class_or_one_variable_with_two_values_are_refused():
    other = {"name": "other", "repository": "https://github.com/test/other.git"}
    error = error_for(lock_of(pack(classes=["TinyLoader"]), pack(**other, classes=["TinyLoader"])))
    assert (error.pack, error.field) == ("other", "classes") and "also listed by pack tiny-pack" in str(error)
    twice = lock_of(pack(env={"TINY_DIR": "{weights_dir}/a"}), pack(**other, env={"TINY_DIR": "/b"}))
    error = error_for(twice)
    assert (error.pack, error.field) == ("other", "env")
    assert "TINY_DIR is '{weights_dir}/a' in pack tiny-pack and '/b' here" in str(error)
    same = lock_of(pack(env={"TINY_DIR": "/b"}), pack(**other, env={"TINY_DIR": "/b"}))
    assert parse_lock(same).comfyui_env("/w") == {"TINY_DIR": "/b"}  # one value: no clash


def test_two_packs_with_one_repository_are_refused():
    error = error_for(lock_of(pack(), pack(name="other", repository="https://github.com/test/tiny-pack")))
    assert error.pack == "other" and "also the repository of pack tiny-pack" in str(error)


def test_two_packs_mapping_one_input_to_different_folders_are_refused():
    other = pack(name="other", repository="https://github.com/test/other.git", loaders={"L": {"m": "vae"}})
    error = error_for(lock_of(pack(loaders={"L": {"m": "loras"}}), other))
    assert (error.pack, error.field) == ("tiny-pack", "loaders")
    assert "L.m is 'vae' in pack other and 'loras' here" in str(error)


def test_the_top_level_is_checked_too():
    assert error_for([]).pack is None
    assert "schema_version must be 1" in str(error_for({"schema_version": 2, "packs": []}))
    assert error_for({"schema_version": 1, "packs": {}}).field == "packs"
    assert error_for({"schema_version": 1, "packs": [], "comfyui_commit": "abc"}).field == "comfyui_commit"


def test_unreadable_and_broken_files_name_the_file(tmp_path):
    with pytest.raises(LockError, match="cannot read"):
        load_lock(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema_version": 1,')
    with pytest.raises(LockError) as caught:
        load_lock(broken)
    assert caught.value.path == str(broken) and "line 1" in str(caught.value)


# ---- selection, numbered inputs ----------------------------------------------------------------------------


def test_selection_by_keyword_or_name():
    off = pack(name="off", repository="https://github.com/test/off.git", install=False)
    lock = parse_lock(lock_of(pack(), off))
    assert [p.name for p in lock.selection(("default",))] == ["tiny-pack"]
    assert [p.name for p in lock.selection(("all",))] == ["off", "tiny-pack"]
    assert lock.selection(("none",)) == []
    assert [p.name for p in lock.selection(("off",))] == ["off"]
    with pytest.raises(UnknownPackError) as caught:
        lock.selection(("nope",), setting="CUSTOM_NODES_INSTALL")
    assert "'nope' (from CUSTOM_NODES_INSTALL)" in str(caught.value) and "off, tiny-pack" in str(caught.value)


def test_numbered_inputs_are_written_out_keeping_zero_padding():
    assert expand_inputs("lora_name_{1..3}") == ["lora_name_1", "lora_name_2", "lora_name_3"]
    assert expand_inputs("lora_{01..03}") == ["lora_01", "lora_02", "lora_03"]
    assert expand_inputs("model") == ["model"]


def test_an_edit_of_the_committed_lock_that_breaks_it_is_caught(tmp_path):
    data = json.loads(Path(BUILTIN_LOCK).read_text())
    broken = copy.deepcopy(data)
    broken["packs"][0]["commit"] = "HEAD"
    error = error_for(broken)
    assert error.pack == data["packs"][0]["name"] and error.field == "commit"
