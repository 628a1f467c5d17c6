"""The OpenAPI schema cog build writes (`.cog/openapi_schema.json`), and coglet refusing what it refuses."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cogbuild import SCHEMA_PATH, openapi_schema
from tests.cog_deployment import deployment, upscale
from tests.cog_server import CogServer
from tests.faultserver import FaultServer

ROOT = Path(__file__).resolve().parent.parent


def test_the_input_schema_is_predicts_inputs_laid_out_as_cog_build_does():
    schemas = openapi_schema("predict.py:Predictor", ROOT)["components"]["schemas"]
    inputs = schemas["Input"]["properties"]
    assert list(inputs) == [
        "workflow_json", "input_file", "return_temp_files", "output_format", "output_quality",
        "randomise_seeds", "force_reset_cache",
    ]  # fmt: skip
    assert [p["x-order"] for p in inputs.values()] == list(range(7))
    assert "required" not in schemas["Input"]  # every input has a default
    assert inputs["output_quality"] | {"description": ""} == {
        "x-order": 4, "title": "Output Quality", "type": "integer", "default": 95,
        "minimum": 1, "maximum": 100, "description": "",
    }  # fmt: skip
    assert inputs["output_format"]["allOf"] == [{"$ref": "#/components/schemas/output_format"}]
    assert schemas["output_format"]["enum"] == ["webp", "jpg", "png"]
    assert inputs["input_file"]["format"] == "uri" and inputs["input_file"]["nullable"] is True
    assert inputs["randomise_seeds"]["type"] == "boolean"
    assert schemas["Output"] == {
        "title": "Output",
        "type": "array",
        "items": {"type": "string", "format": "uri"},
    }


def test_the_cli_writes_the_same_schema(tmp_path):
    out = tmp_path / "schema.json"
    subprocess.run([sys.executable, "-m", "cogbuild", "schema", "--out", str(out)], cwd=ROOT, check=True)
    assert json.loads(out.read_text()) == openapi_schema("predict.py:Predictor", ROOT)


class CogServerWithoutSchema(CogServer):
    """coglet as run before the schema was written: no `.cog/openapi_schema.json`."""

    def start(self):  # type: ignore[override]
        (ROOT / SCHEMA_PATH).unlink(missing_ok=True)
        import tests.cog_server as module

        real, module.write_schema = module.write_schema, lambda *args: None
        try:
            return super().start()
        finally:
            module.write_schema = real


@pytest.fixture(scope="module")
def cog(tmp_path_factory) -> Iterator[CogServer]:
    base = tmp_path_factory.mktemp("schema")
    with FaultServer() as server, CogServer(deployment(base, server), log_path=base / "cog.log") as cog:
        yield cog


@pytest.mark.parametrize(
    ("name", "value"),
    [("output_quality", 500), ("output_quality", 0), ("randomise_seeds", "yes"), ("output_format", "bmp")],
)
def test_coglet_refuses_with_422_what_the_schema_refuses(cog, name, value):
    answer = cog.predict({"workflow_json": json.dumps(upscale("tiny_compact_x2.safetensors")), name: value})
    assert answer["http_status"] == 422, answer
    (detail,) = answer["detail"]
    assert detail["loc"] == ["body", "input", name]


def test_without_the_schema_coglet_lets_a_wrong_type_reach_predict(tmp_path):
    workflow = json.dumps(upscale("tiny_compact_x2.safetensors"))
    with FaultServer() as server:
        env = deployment(tmp_path, server)
        with CogServerWithoutSchema(env, log_path=tmp_path / "cog.log") as cog:
            answer = cog.predict({"workflow_json": workflow, "randomise_seeds": "yes"})
    assert answer.get("http_status") != 422 and answer["status"] in ("succeeded", "failed"), answer
