"""Reading a workflow: every accepted form, and a clear error for every malformed one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from weightkit.errors import WeightkitError, WorkflowError
from weightkit.workflow import MAX_DEPTH, parse_workflow

RECORDINGS = Path(__file__).resolve().parent / "reference" / "comfyui"
NODES = {
    "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "model.safetensors"}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
}


@pytest.mark.parametrize(
    "given",
    [
        pytest.param(NODES, id="dict"),
        pytest.param(json.dumps(NODES), id="json-text"),
        pytest.param(json.dumps(NODES).encode(), id="json-bytes"),
        pytest.param(b"\xef\xbb\xbf" + json.dumps(NODES).encode(), id="json-bytes-with-bom"),
        pytest.param("\ufeff" + json.dumps(NODES), id="json-text-with-bom"),
        pytest.param({"prompt": NODES, "client_id": "abc", "extra_data": {}}, id="comfyui-request-body"),
        pytest.param(json.dumps({"prompt": NODES, "client_id": "abc"}), id="comfyui-request-body-text"),
    ],
)
def test_accepted_forms_give_the_same_nodes(given):
    assert parse_workflow(given) == NODES


def test_integer_node_ids_become_strings():
    nodes = parse_workflow({3: {"class_type": "X", "inputs": {}}})
    assert list(nodes) == ["3"]


def test_node_named_prompt_is_a_node_not_a_request_body():
    nodes = parse_workflow({"prompt": {"class_type": "X", "inputs": {}}})
    assert nodes == {"prompt": {"class_type": "X", "inputs": {}}}


@pytest.mark.parametrize("path", sorted(RECORDINGS.glob("workflow_*.json")), ids=lambda p: p.stem)
def test_every_recorded_workflow_parses(path):
    nodes = parse_workflow(path.read_bytes())
    assert nodes and all(isinstance(node["class_type"], str) for node in nodes.values())


def test_ui_format_says_how_to_export_the_api_format():
    ui = {"last_node_id": 9, "last_link_id": 9, "nodes": [{"id": 3, "type": "KSampler"}], "links": []}
    with pytest.raises(WorkflowError) as info:
        parse_workflow(json.dumps(ui))
    message = str(info.value)
    assert "UI format" in message and "Export (API)" in message


def test_broken_json_gives_line_and_column():
    text = '{\n  "1": {"class_type": "X",\n    "inputs": {"a": 1,}}\n}'
    with pytest.raises(WorkflowError) as info:
        parse_workflow(text)
    assert (info.value.line, info.value.column) == (3, 23)
    assert "line 3 column 23" in str(info.value)
    assert isinstance(info.value.__cause__, json.JSONDecodeError)


def test_bytes_that_are_not_utf8_are_refused():
    with pytest.raises(WorkflowError, match="not UTF-8"):
        parse_workflow(b'{"1": "\xff"}')


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param({}, "empty", id="empty-object"),
        pytest.param("", "empty", id="empty-text"),
        pytest.param("  \n", "empty", id="blank-text"),
        pytest.param({"prompt": {}, "client_id": "x"}, "empty", id="empty-request-body"),
        pytest.param("[]", "is a list", id="top-level-list"),
        pytest.param('"text"', "is a string", id="top-level-string"),
        pytest.param("42", "is a number", id="top-level-number"),
        pytest.param("null", "is null", id="top-level-null"),
        pytest.param([1, 2], "is a list", id="python-list"),
    ],
)
def test_empty_or_non_object_workflow_is_refused(given, expected):
    with pytest.raises(WorkflowError, match=expected):
        parse_workflow(given)


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        pytest.param(["CheckpointLoaderSimple"], "must be an object.*is a list", id="node-is-a-list"),
        pytest.param("CheckpointLoaderSimple", "must be an object.*is a string", id="node-is-a-string"),
        pytest.param({"inputs": {}}, "has no 'class_type'", id="no-class-type"),
        pytest.param({"class_type": 7, "inputs": {}}, "has the class_type 7", id="class-type-a-number"),
        pytest.param({"class_type": " ", "inputs": {}}, "has the class_type ' '", id="class-type-blank"),
        pytest.param({"class_type": "X"}, r"\(X\) has no 'inputs'", id="no-inputs"),
        pytest.param({"class_type": "X", "inputs": [1]}, "'inputs' that are a list", id="inputs-a-list"),
    ],
)
def test_malformed_node_is_named_in_the_error(node, expected):
    with pytest.raises(WorkflowError, match=expected) as info:
        parse_workflow({"1": NODES["1"], "7": node})
    assert info.value.node_id == "7"
    assert str(info.value).startswith("Node 7 ")


def test_node_id_given_twice_is_refused():
    with pytest.raises(WorkflowError, match="appears twice"):
        parse_workflow({1: {"class_type": "X", "inputs": {}}, "1": {"class_type": "Y", "inputs": {}}})


@pytest.mark.parametrize("key", ["", None, 1.5, True], ids=["empty", "none", "float", "bool"])
def test_node_id_that_is_not_a_string_or_integer_is_refused(key):
    with pytest.raises(WorkflowError, match="Node ids must be"):
        parse_workflow({key: {"class_type": "X", "inputs": {}}})


def test_workflow_error_is_a_value_error_and_a_weightkit_error():
    with pytest.raises(ValueError) as info:
        parse_workflow("{")
    assert isinstance(info.value, WeightkitError)


@pytest.mark.parametrize("depth", [101, 900, 100_000])
def test_nesting_deeper_than_the_limit_is_a_workflow_error_not_a_recursion_error(depth):
    text = '{"1": {"class_type": "X", "inputs": {"a": ' + "[" * depth + "]" * depth + "}}}"
    with pytest.raises(WorkflowError, match=f"more than {MAX_DEPTH} levels deep"):
        parse_workflow(text)


def test_nesting_up_to_the_limit_parses_and_brackets_inside_strings_do_not_count():
    inner = MAX_DEPTH - 3  # the workflow object, the node and its inputs are three levels
    text = '{"1": {"class_type": "X", "inputs": {"s": "[[[{{{\\"", "a": ' + "[" * inner + "]" * inner + "}}}"
    assert parse_workflow(text)["1"]["inputs"]["s"] == '[[[{{{"'


def test_an_integer_of_thousands_of_digits_is_a_workflow_error():
    with pytest.raises(WorkflowError, match="number too long to read"):
        parse_workflow('{"1": {"class_type": "X", "inputs": {"seed": ' + "9" * 5000 + "}}}")
    assert parse_workflow('{"1": {"class_type": "X", "inputs": {"seed": 18446744073709551615}}}')
