"""Custom node packs and node classes end to end: through the real Cog runtime, a pack's loader reads its
weight from the folder it registered and its text comes back as a file; a class ComfyUI lacks fails the
prediction before any weight is fetched, saying what it knows of it. ComfyUI (stand-in or real) loads the
packs from a `custom_nodes` folder given in `EXTRA_MODEL_PATHS_CONFIG`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from comfyrun.errors import UnknownNodeClassError
from comfyrun.settings import RuntimeSettings
from comfyui import ComfyUI
from tests.cog_deployment import COMFYUI_PATH, deployment, upscale, weights_server
from tests.cog_server import CogServer, data_uri_bytes
from tests.custom_packs import loaded_text, tiny_workflow, write_packs
from weightkit.settings import WeightSettings

pytestmark = pytest.mark.comfyui
__all__ = ["weights_server"]

WEIGHT = b"a tiny weight of a custom folder"


def packs_config(base: Path) -> Path:
    write_packs(base / "custom_nodes", base / "tiny_models")
    (base / "tiny_models" / "tiny.bin").write_bytes(WEIGHT)
    config = base / "packs.yaml"
    config.write_text(yaml.safe_dump({"packs": {"custom_nodes": str(base / "custom_nodes")}}))
    return config


@pytest.fixture(scope="module")
def cog(tmp_path_factory, weights_server) -> Iterator[CogServer]:
    base = tmp_path_factory.mktemp("packs")
    env = deployment(base, weights_server, EXTRA_MODEL_PATHS_CONFIG=str(packs_config(base)))
    with CogServer(env, log_path=base / "cog.log") as server:
        server.base = base
        yield server


def test_a_packs_loader_reads_its_weight_from_the_folder_it_registered(cog):
    prediction = cog.predict({"workflow_json": json.dumps(tiny_workflow("tiny.bin"))})
    assert prediction["status"] == "succeeded", prediction.get("error")
    (text,) = prediction["output"]
    assert data_uri_bytes(text).decode() == loaded_text("tiny.bin", WEIGHT)


def test_text_outputs_are_numbered_files_never_named_after_a_node_id(cog):
    workflow = tiny_workflow("tiny.bin", loader_id="1", show_id="../../escaped")
    prediction = cog.predict({"workflow_json": json.dumps(workflow)})
    assert prediction["status"] == "succeeded", prediction.get("error")
    assert data_uri_bytes(prediction["output"][0]).decode() == loaded_text("tiny.bin", WEIGHT)
    assert not list(cog.base.glob("escaped*"))  # `output/text/../../escaped_0.txt` before
    assert [p.name for p in (cog.base / "output" / "text").iterdir()] == ["text_1.txt"]


def test_an_unknown_class_fails_before_any_download_naming_the_nearest_class(cog, weights_server):
    workflow = upscale("by_workflow.safetensors")  # a weight not here yet: it would be fetched
    workflow["3"]["class_type"] = "ImageUpscaleWithModle"
    prediction = cog.predict({"workflow_json": json.dumps(workflow)})
    assert prediction["status"] == "failed"
    assert weights_server.seen("/w/preloaded-by-workflow.safetensors") == []
    assert not (cog.base / "weights" / "upscale_models" / "by_workflow.safetensors").exists()
    assert (
        "no node class 'ImageUpscaleWithModle' (node 3): did you mean 'ImageUpscaleWithModel'?"
        in (prediction["error"])
    )
    assert "nothing was downloaded" in prediction["error"]


def test_a_class_from_a_pack_that_failed_to_import_names_the_pack_and_its_error(cog):
    workflow = {"1": {"class_type": "BrokenNode", "inputs": {}}}
    prediction = cog.predict({"workflow_json": json.dumps(workflow)})
    assert prediction["status"] == "failed"
    assert (
        "no node class 'BrokenNode' (node 1): it may come from a pack that failed to import: "
        in (prediction["error"])
    )
    assert "brokenpack (No module named 'tiny_dependency_that_is_not_installed')" in prediction["error"]


def test_a_pack_lookup_says_which_pack_provides_a_class_and_whether_it_failed(tmp_path):
    settings = replace(
        RuntimeSettings.from_env(),
        input_dir=tmp_path / "input",
        output_dir=tmp_path / "output",
        temp_dir=tmp_path / "temp",
        model_paths_file=tmp_path / "extra_model_paths.yaml",
        weights=WeightSettings(
            comfyui_path=COMFYUI_PATH,
            weights_dir=tmp_path / "weights",
            extra_model_paths=packs_config(tmp_path),
        ),
    )
    packs = {
        "BrokenNode": ("brokenpack", "https://github.com/example/brokenpack"),
        "FancyNode": ("ComfyUI-Fancy", "https://github.com/example/ComfyUI-Fancy.git"),
    }

    def hint_for(class_type: str, failures: dict[str, str]) -> str | None:
        """What the caller's custom node knowledge says (nodekit's sentence, in the product)."""
        name, url = packs[class_type]
        if name in failures:
            return f"it comes from the pack {name} ({url}), installed but failed to import: {failures[name]}"
        return f"it comes from the pack {name} ({url}), which is not installed"

    workflow = {"1": {"class_type": "BrokenNode", "inputs": {}}, "2": {"class_type": "FancyNode"}}
    with ComfyUI(settings) as comfy:
        assert comfy.import_failures() == {
            "brokenpack": "No module named 'tiny_dependency_that_is_not_installed'",
            "nomappack.py": "the lack of NODE_CLASS_MAPPINGS or NODES_LIST (need one)",
        }
        with pytest.raises(UnknownNodeClassError) as info:
            comfy.check_node_classes(workflow, hint_for=hint_for)
    assert info.value.missing == {"BrokenNode": ("1",), "FancyNode": ("2",)}
    assert str(info.value) == (
        "This ComfyUI has no node class 'BrokenNode' (node 1): it comes from the pack brokenpack "
        "(https://github.com/example/brokenpack), installed but failed to import: No module named "
        "'tiny_dependency_that_is_not_installed'; no class 'FancyNode' (node 2): it comes from the pack "
        "ComfyUI-Fancy (https://github.com/example/ComfyUI-Fancy.git), which is not installed. Fix the "
        "class name, or install the custom node pack that provides it; nothing was downloaded for this "
        "workflow."
    )
