"""Custom node packs in `custom_nodes/`, loaded as ComfyUI loads them: their classes in `/object_info` with
file lists read when asked, run with the weight they open from a folder they registered, front-end files
listed, packs that fail to import logged in ComfyUI's words and skipped. The same tests run against a real
ComfyUI when `COMFYUI_PATH` is set."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from standin_process import ComfyProcess, attached_url, start_comfyui
from standin_wire import Socket, get, post

from tests.custom_packs import loaded_text, tiny_workflow, write_packs

pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.skipif(attached_url() is not None, reason="writes packs into the server it starts"),
]


@pytest.fixture(scope="module")
def comfy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComfyProcess]:
    base = tmp_path_factory.mktemp("packs")
    write_packs(base / "custom_nodes", base / "tiny_models")
    (base / "tiny_models" / "first.bin").write_bytes(b"first weight")
    with start_comfyui(base) as process:
        process.base = base
        yield process


def run(comfy: ComfyProcess, prompt: dict[str, Any]) -> list[dict[str, Any]]:
    client_id = uuid.uuid4().hex
    with Socket(comfy.ws_url(client_id)) as socket:
        socket.receive()
        answer = post(comfy.url, "/prompt", {"prompt": prompt, "client_id": client_id})
        assert answer.status == 200, answer.body
        return [f.msg for f in socket.until_done(answer.json()["prompt_id"]) if f.msg]


def test_pack_classes_are_in_object_info_with_their_module_and_file_lists_read_when_asked(comfy):
    info = get(comfy.url, "/object_info/TinyWeightLoader").json()["TinyWeightLoader"]
    assert info["python_module"] == "custom_nodes.tinypack"
    assert info["display_name"] == "Load Tiny Weight" and info["category"] == "tiny"
    assert info["input"]["required"]["weight_name"][0] == ["first.bin"]
    (comfy.base / "tiny_models" / "second.bin").write_bytes(b"second")
    again = get(comfy.url, "/object_info").json()
    assert again["TinyWeightLoader"]["input"]["required"]["weight_name"][0] == ["first.bin", "second.bin"]
    assert again["TinyShowText"]["output_node"] is True


def test_pack_loader_opens_the_weight_from_the_folder_the_pack_registered(comfy):
    messages = run(comfy, tiny_workflow("first.bin"))
    (executed,) = [m["data"] for m in messages if m["type"] == "executed"]
    assert executed["node"] == "2"
    assert executed["output"] == {"text": [loaded_text("first.bin", b"first weight")]}


def test_packs_that_fail_to_import_are_logged_in_comfyuis_words_and_skipped(comfy):
    nodes = comfy.base / "custom_nodes"
    log = comfy.log()
    assert (
        f"Cannot import {nodes / 'brokenpack'} module for custom nodes: "
        "No module named 'tiny_dependency_that_is_not_installed'"
    ) in log
    assert (
        f"Skip {nodes / 'nomappack.py'} module for custom nodes due to the lack of NODE_CLASS_MAPPINGS or "
        "NODES_LIST (need one)."
    ) in log
    assert f"seconds (IMPORT FAILED): {nodes / 'brokenpack'}\n" in log
    assert f"seconds (IMPORT FAILED): {nodes / 'nomappack.py'}\n" in log
    assert f"seconds: {nodes / 'tinypack'}\n" in log
    assert "offpack" not in log and "README" not in log  # `.disabled` and other files are not packs
    classes = get(comfy.url, "/object_info").json()
    assert "OffNode" not in classes and "TinyShowText" in classes


def test_a_packs_web_directory_is_listed_in_extensions(comfy):
    assert "/extensions/tinypack/tiny.js" in get(comfy.url, "/extensions").json()
