"""Workflow → weights: the recorded workflows, every built-in loader, generic inputs, embeddings, names
that are not files, aliases, order and de-duplication, and names that try to leave their folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from weightkit.errors import ManifestError, UnsafeWeightNameError, WorkflowError
from weightkit.extract import required_weights
from weightkit.loaders import builtin_loader_map
from weightkit.manifest import Manifest
from weightkit.manifest_file import load_manifest, parse_manifest
from weightkit.settings import BUILTIN_MANIFEST

RECORDINGS = Path(__file__).resolve().parent / "reference" / "comfyui"
MANIFEST = load_manifest(BUILTIN_MANIFEST)

UPSCALER = ("UpscaleModelLoader", "model_name")
# Every recorded workflow and what it needs: (folder, name, node id, class_type, input name).
RECORDED = {
    "a": [],
    "b": [],
    "c": [],
    "d_bad_combo": [],
    "d_bad_values": [],
    "d_missing_ckpt": [
        ("checkpoints", "does_not_exist.safetensors", "1", "CheckpointLoaderSimple", "ckpt_name")
    ],
    "d_missing_link": [],
    "d_missing_upscale_model": [("upscale_models", "nope.safetensors", "2", *UPSCALER)],
    "d_no_outputs": [],
    "d_partial_invalid": [("upscale_models", "nope.pth", "3", *UPSCALER)],
    "d_partial_invalid_legacy": [],
    "d_unknown_class": [],
    "e": [("upscale_models", "tiny_compact_x2.safetensors", "2", *UPSCALER)],
    "e_pth": [("upscale_models", "tiny_compact_x2.pth", "2", *UPSCALER)],
    "extra_paths_priority": [("upscale_models", "tiny_compact_x2.safetensors", "2", *UPSCALER)],
    "f_header": [("upscale_models", "broken_header.safetensors", "2", *UPSCALER)],
    "f_pth_truncated": [("upscale_models", "broken_truncated.pth", "2", *UPSCALER)],
    "f_truncated": [("upscale_models", "broken_truncated.safetensors", "2", *UPSCALER)],
    "f_unknown_arch": [("upscale_models", "not_an_upscaler.safetensors", "2", *UPSCALER)],
    "g_preview_image": [],
    "g_upscale_progress": [("upscale_models", "tiny_compact_x2.safetensors", "2", *UPSCALER)],
    "g_ws_binary_flags": [],
    "g_ws_binary_legacy": [],
    "h_interrupt": [("upscale_models", "slow_compact_x2.safetensors", "2", *UPSCALER)],
    "hotadd_after_free": [("upscale_models", "hot_added.safetensors", "2", *UPSCALER)],
    "hotadd_overwrite": [("upscale_models", "hot_added.safetensors", "2", *UPSCALER)],
    "hotadd_removed": [("upscale_models", "hot_added.safetensors", "2", *UPSCALER)],
    "hotadd_removed_oldstyle": [],
    "hotadd_subdir": [("upscale_models", "sub/hot_in_subdir.safetensors", "2", *UPSCALER)],
    "hotadd_use": [("upscale_models", "hot_added.safetensors", "2", *UPSCALER)],
    "i_custom_prompt_id": [],
    "i_custom_prompt_id_reuse": [],
    "i_extra_data": [],
    "i_oom": [],
    "i_other_client": [],
}


def rows(refs):
    return [(r.folder, r.name, r.node_id, r.class_type, r.input_name) for r in refs]


def node(class_type, **inputs):
    return {"class_type": class_type, "inputs": inputs}


def test_the_expected_table_covers_every_recording():
    assert {p.stem.removeprefix("workflow_") for p in RECORDINGS.glob("workflow_*.json")} == set(RECORDED)


@pytest.mark.parametrize(("case", "expected"), sorted(RECORDED.items()))
def test_recorded_workflow_needs_exactly(case, expected):
    refs = required_weights((RECORDINGS / f"workflow_{case}.json").read_bytes(), MANIFEST)
    assert rows(refs) == expected
    assert all(ref.entry is None for ref in refs)  # the lab's test models are not in the manifest


def test_builtin_loader_map_is_the_recorded_one_plus_the_audio_encoder():
    recorded = json.loads((RECORDINGS / "loader_inputs.json").read_text())
    expected = {k: dict(v) for k, v in recorded["mapping"].items()}
    expected["AudioEncoderLoader"] = {"audio_encoder_name": "audio_encoders"}
    assert builtin_loader_map().folders == expected
    assert len(expected) == 27


@pytest.mark.parametrize(
    ("class_type", "input_name", "folder"),
    [(c, i, f) for c, inputs in sorted(builtin_loader_map().folders.items()) for i, f in inputs.items()],
)
def test_every_builtin_loader_input_is_a_weight_in_its_folder(class_type, input_name, folder):
    refs = required_weights({"1": node(class_type, **{input_name: "some_file.safetensors"})})
    assert rows(refs) == [(folder, "some_file.safetensors", "1", class_type, input_name)]


def test_legacy_folder_names_are_canonical():
    workflow = {
        "1": node("CLIPLoader", clip_name="clip_l.safetensors", type="flux"),
        "2": node("UNETLoader", unet_name="flux1-schnell.safetensors", weight_dtype="default"),
    }
    refs = required_weights(workflow, MANIFEST)
    assert [(r.folder, r.entry.key) for r in refs] == [
        ("text_encoders", "text_encoders/clip_l.safetensors"),
        ("diffusion_models", "diffusion_models/flux1-schnell.safetensors"),
    ]


@pytest.mark.parametrize(
    ("class_type", "inputs"),
    [
        pytest.param("VAELoader", {"vae_name": "pixel_space"}, id="pixel_space"),
        pytest.param("VAELoader", {"vae_name": "taesd"}, id="taesd"),
        pytest.param("VAELoader", {"vae_name": "taesdxl"}, id="taesdxl"),
        pytest.param("VAELoader", {"vae_name": "taesd3"}, id="taesd3"),
        pytest.param("VAELoader", {"vae_name": "taef1"}, id="taef1"),
        pytest.param("TrainLoraNode", {"existing_lora": "[None]"}, id="train-lora-none"),
        pytest.param("LoraLoader", {"lora_name": "None"}, id="none-text"),
        pytest.param("LoraLoader", {"lora_name": ""}, id="empty"),
        pytest.param("LoraLoader", {"lora_name": None}, id="null"),
        pytest.param("LoraLoader", {"lora_name": ["4", 0]}, id="link"),
        pytest.param("KSampler", {"seed": 5, "cfg": 7.5, "denoise": 1.0}, id="numbers"),
        pytest.param("LoadImage", {"image": "photo.png"}, id="input-image"),
        pytest.param("CLIPTextEncode", {"text": "a portrait, model.pt\nin oil"}, id="multi-line-text"),
        pytest.param("Downloader", {"url": "https://example.com/x.safetensors"}, id="url"),
        pytest.param("CLIPTextEncode", {"text": "myembedding:foo and xembedding:bar"}, id="not-an-embedding"),
    ],
)
def test_values_that_are_not_files_are_not_weights(class_type, inputs):
    assert required_weights({"1": node(class_type, **inputs)}, MANIFEST) == []


def test_generic_input_with_a_model_extension_is_placed_by_the_manifest():
    workflow = {"1": node("CustomEncoderLoader", encoder="clip_l.safetensors", strength=1.0)}
    (ref,) = required_weights(workflow, MANIFEST)
    assert (ref.folder, ref.name, ref.input_name) == ("text_encoders", "clip_l.safetensors", "encoder")
    assert ref.entry is MANIFEST.find("clip_l.safetensors", "text_encoders")


@pytest.mark.parametrize(
    "value",
    [
        "my_model.SAFETENSORS",
        "a.sft",
        "b.ckpt",
        "c.pt",
        "d.pt2",
        "e.pth",
        "f.bin",
        "g.pkl",
        "h.onnx",
        "i.gguf",
    ],
)
def test_generic_input_with_any_model_extension_is_listed_with_unknown_folder(value):
    (ref,) = required_weights({"9": node("SomeCustomNode", model=value)}, MANIFEST)
    assert (ref.folder, ref.name, ref.entry) == (None, value, None)


def test_generic_name_in_two_manifest_folders_has_unknown_folder():
    # flux1-dev-fp8.safetensors is both a checkpoint and a diffusion model: no way to tell which.
    (ref,) = required_weights({"1": node("Custom", model="flux1-dev-fp8.safetensors")}, MANIFEST)
    assert (ref.folder, ref.entry) == (None, None)


def test_manifest_loaders_add_custom_nodes_and_override_builtin_inputs():
    (ipadapter,) = required_weights(
        {"1": node("IPAdapterModelLoader", ipadapter_file="ip-adapter_sd15.safetensors")}, MANIFEST
    )
    assert (ipadapter.folder, ipadapter.entry.key) == ("ipadapter", "ipadapter/ip-adapter_sd15.safetensors")
    custom = parse_manifest(
        {"schema_version": 1, "loaders": {"VAELoader": {"vae_name": "vae_approx"}, "MyLoader": {"m": "clip"}}}
    )
    workflow = {"1": node("VAELoader", vae_name="x.pth"), "2": node("MyLoader", m="y")}
    assert rows(required_weights(workflow, custom)) == [
        ("vae_approx", "x.pth", "1", "VAELoader", "vae_name"),
        ("text_encoders", "y", "2", "MyLoader", "m"),
    ]


def test_a_node_class_that_loads_weights_when_it_runs_requires_them_for_the_node_using_it():
    body = {"name": "dw.onnx", "folder": "annotators", "size": 5, "sha256": "a" * 64, "urls": ["https://x/y"]}
    body |= {"license": None, "non_commercial": False, "gated": False}
    pack = Manifest.build(
        [parse_manifest({"schema_version": 1, "weights": [body]}).entries["annotators/dw.onnx"]],
        [],
        needs={"DWPreprocessor": ["annotators/dw.onnx"]},
    )
    (ref,) = required_weights({"7": node("DWPreprocessor", resolution=512)}, MANIFEST.merged(pack))
    assert (ref.folder, ref.name, ref.node_id, ref.entry.key) == (
        "annotators",
        "dw.onnx",
        "7",
        "annotators/dw.onnx",
    )
    assert ref.where == "node 7 (DWPreprocessor), which loads it when it runs"
    with pytest.raises(ManifestError, match=r"needed weight 'annotators/nope\.onnx'"):
        Manifest.build([], [], needs={"DWPreprocessor": ["annotators/nope.onnx"]})


def test_the_value_of_a_choosing_input_requires_the_weight_it_picks_and_other_values_none():
    bodies = [
        {"name": n, "folder": "annotators", "size": 5, "sha256": "a" * 64, "urls": ["https://x/" + n]}
        | {"license": None, "non_commercial": False, "gated": False}
        for n in ("yolox_l.onnx", "yolo_nas_s.onnx")
    ]
    entries = parse_manifest({"schema_version": 1, "weights": bodies}).entries
    picks = {"yolox_l.onnx": "annotators/yolox_l.onnx", "yolo_nas_s.onnx": "annotators/yolo_nas_s.onnx"}
    pack = Manifest.build(list(entries.values()), [], chosen={"DWPreprocessor": {"bbox_detector": picks}})
    merged = MANIFEST.merged(pack)
    workflow = {"7": node("DWPreprocessor", bbox_detector="yolo_nas_s.onnx", resolution=512)}
    (ref,) = required_weights(workflow, merged)
    found = (ref.entry.key, ref.node_id, ref.input_name)
    assert found == ("annotators/yolo_nas_s.onnx", "7", "bbox_detector")
    assert required_weights({"7": node("DWPreprocessor", bbox_detector="None")}, merged) == []
    with pytest.raises(ManifestError, match=r"chosen weight 'annotators/nope\.onnx'"):
        Manifest.build([], [], chosen={"DWPreprocessor": {"bbox_detector": {"x": "annotators/nope.onnx"}}})


@pytest.mark.parametrize(
    ("text", "names"),
    [
        pytest.param("embedding:EasyNegative", ["EasyNegative"], id="alone"),
        pytest.param("ugly, embedding:EasyNegative, blurry", ["EasyNegative"], id="comma-after"),
        pytest.param("(embedding:EasyNegative:1.2), bad", ["EasyNegative"], id="weighted"),
        pytest.param("(embedding:EasyNegative)", ["EasyNegative"], id="in-parentheses"),
        pytest.param(
            "x\nembedding:EasyNegative.safetensors", ["EasyNegative.safetensors"], id="with-extension"
        ),
        pytest.param("embedding:a embedding:sub/b", ["a", "sub/b"], id="two-and-a-subfolder"),
        pytest.param("embedding:", [], id="no-name"),
    ],
)
def test_embeddings_in_prompt_texts(text, names):
    refs = required_weights({"6": node("CLIPTextEncode", text=text, clip=["4", 1])}, MANIFEST)
    assert [(r.folder, r.name, r.input_name) for r in refs] == [("embeddings", n, "text") for n in names]


def test_embedding_without_extension_resolves_to_its_manifest_entry():
    (ref,) = required_weights({"6": node("CLIPTextEncode", text="embedding:EasyNegative")}, MANIFEST)
    assert ref.entry.key == "embeddings/EasyNegative.safetensors"


def test_alias_and_sft_spellings_keep_the_written_name_and_resolve_the_entry():
    workflow = {
        "1": node("LoraLoader", lora_name="lcm_lora_sdxl.safetensors"),
        "2": node("VAELoader", vae_name="ae.sft"),
    }
    refs = required_weights(workflow, MANIFEST)
    assert [(r.name, r.entry.key) for r in refs] == [
        ("lcm_lora_sdxl.safetensors", "loras/lcm-lora-sdxl.safetensors"),
        ("ae.sft", "vae/ae.safetensors"),
    ]


def test_without_a_manifest_loaders_still_place_weights():
    (ref,) = required_weights({"1": node("VAELoader", vae_name="ae.safetensors")})
    assert (ref.folder, ref.entry) == ("vae", None)


def test_order_is_numeric_by_node_id_and_duplicates_keep_the_first_asker():
    workflow = {
        "10": node("LoraLoader", lora_name="b.safetensors"),
        "9": node("LoraLoader", lora_name="a.safetensors"),
        "10:2": node("LoraLoader", lora_name="c.safetensors"),
        "2": node("LoraLoader", lora_name="b.safetensors"),
        "x": node("VAELoader", vae_name="a.safetensors"),
        "3": node("CreateHookLora", lora_name="a.safetensors"),
    }
    refs = required_weights(workflow, MANIFEST)
    assert [(r.folder, r.name, r.node_id) for r in refs] == [
        ("loras", "b.safetensors", "2"),
        ("loras", "a.safetensors", "3"),
        ("loras", "c.safetensors", "10:2"),
        ("vae", "a.safetensors", "x"),
    ]


def test_one_node_asking_for_several_files_lists_them_in_input_order():
    workflow = {"5": node("TripleCLIPLoader", clip_name3="t5.safetensors", clip_name1="l.safetensors")}
    assert [r.input_name for r in required_weights(workflow)] == ["clip_name3", "clip_name1"]


@pytest.mark.parametrize(
    ("class_type", "input_name", "value"),
    [
        pytest.param("LoraLoader", "lora_name", "../loras/x.safetensors", id="dot-dot"),
        pytest.param("LoraLoader", "lora_name", "a/../../x.safetensors", id="dot-dot-inside"),
        pytest.param("CheckpointLoaderSimple", "ckpt_name", "/etc/passwd", id="absolute"),
        pytest.param("CheckpointLoaderSimple", "ckpt_name", "C:/models/x.ckpt", id="windows-drive"),
        pytest.param("VAELoader", "vae_name", "..\\..\\x.pt", id="backslash"),
        pytest.param("VAELoader", "vae_name", "a//b.pt", id="empty-component"),
    ],
)
def test_names_that_leave_their_folder_are_refused_naming_node_and_input(class_type, input_name, value):
    workflow = {"1": node("EmptyImage", width=8), "4": node(class_type, **{input_name: value})}
    with pytest.raises(UnsafeWeightNameError) as info:
        required_weights(workflow, MANIFEST)
    error = info.value
    assert (error.node_id, error.class_type, error.input_name, error.value) == (
        "4",
        class_type,
        input_name,
        value,
    )
    assert f"Node 4 ({class_type}) input '{input_name}'" in str(error) and "path traversal" in str(error)
    assert isinstance(error, WorkflowError)


@pytest.mark.parametrize("value", ["/tmp/out/model.safetensors", "../x.gguf", "C:/out/x.ckpt"])
def test_a_path_in_an_input_no_loader_names_is_left_to_its_node(value):
    workflow = {
        "4": node("SaveModelSomewhere", path=value),
        "5": node("LoraLoader", lora_name="a.safetensors"),
    }
    assert [(r.node_id, r.name) for r in required_weights(workflow, MANIFEST)] == [("5", "a.safetensors")]


def test_a_loaders_malformed_url_is_a_workflow_error_naming_node_input_and_url():
    workflow = {"4": node("LoraLoader", lora_name="http://[::1/x.safetensors?token=secret")}
    with pytest.raises(WorkflowError) as info:
        required_weights(workflow, MANIFEST)
    error = info.value
    assert (error.node_id, error.class_type, error.input_name) == ("4", "LoraLoader", "lora_name")
    assert "Node 4 (LoraLoader) input 'lora_name'" in str(error) and "'http://[::1/x.safetensors'" in str(
        error
    )
    assert "Invalid IPv6 URL" in str(error) and "secret" not in str(error)


def test_embedding_that_leaves_its_folder_is_refused():
    with pytest.raises(UnsafeWeightNameError) as info:
        required_weights({"6": node("CLIPTextEncode", text="good, embedding:../../secret")}, MANIFEST)
    assert (info.value.input_name, info.value.value) == ("text", "../../secret")


def test_subfolder_names_are_allowed():
    (ref,) = required_weights({"1": node("LoraLoader", lora_name="sdxl/detail.safetensors")})
    assert ref.name == "sdxl/detail.safetensors"


def test_malformed_workflow_raises_workflow_error():
    with pytest.raises(WorkflowError):
        required_weights('{"1": {"inputs": {}}}', MANIFEST)
