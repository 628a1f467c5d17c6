"""The OpenAPI schema `cog build` writes to `.cog/openapi_schema.json`, which coglet validates inputs with.

coglet loads `.cog/openapi_schema.json` from its working directory at setup (replicate/cog
`crates/coglet/src/worker.rs`, `BUNDLED_SCHEMA_PATH`) and checks each prediction's input against
`components.schemas.Input`, answering 422 for what does not fit. Without the file it accepts anything
(`randomise_seeds: "yes"` reaches predict()).

`cog build` (v0.22, commit 6110c912) writes the file before building, from a static parse of predict.py in
Go (`pkg/schema/openapi_spec.go` lays out the document). Here the predictor's inputs come from the cog SDK's
own inspector (`cog._inspector.create_predictor`, what coglet's worker runs), laid out the same way:
`Input` with `x-order`, titles, defaults, `minimum`/`maximum`, and choices as `allOf` references to an
enumeration schema named after the input. One difference the SDK cannot avoid: `Input(default=None)` and
`Input()` look the same to it, so a nullable input with no default is given `"default": null`.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

__all__ = ["SCHEMA_PATH", "openapi_schema", "write_schema"]

SCHEMA_PATH = Path(".cog") / "openapi_schema.json"


def title_case(name: str) -> str:
    """`schema.TitleCase`: words split on `_`, each capitalised, joined with spaces."""
    return " ".join(part[:1].upper() + part[1:] for part in name.split("_"))


def _number(value: float) -> int | float:
    """Go marshals a float64 of 100 as `100`; keep that spelling."""
    return int(value) if float(value).is_integer() else value


def _raw_defaults(module_name: str, predictor_name: str) -> dict[str, Any]:
    """Each predict() parameter's default as written (a FieldInfo, a value, or `inspect.Parameter.empty`)."""
    from cog import _inspector

    target = getattr(importlib.import_module(module_name), predictor_name)
    if inspect.isclass(target):
        _, method = _inspector._selected_predict_method(target, f"{module_name}.{predictor_name}")
    else:
        method = target
    params = list(inspect.signature(_inspector._unwrap(method)).parameters.values())
    return {p.name: p.default for p in params if p.name != "self"}


def _input_property(field: Any, raw_default: Any) -> tuple[dict[str, Any], dict[str, Any] | None, bool]:
    """One input's property, its enumeration schema (for choices) and whether it is required."""
    from cog import _adt
    from cog.input import FieldInfo

    ftype = field.type
    prop: dict[str, Any] = {"x-order": field.order}
    enum = None
    if field.choices:
        enum = {
            "title": field.name,
            "description": "An enumeration.",
            "enum": [ftype.primitive.json_encode(c) for c in field.choices],
            "type": ftype.primitive.json_type().get("type") or "string",
        }
        prop["allOf"] = [{"$ref": f"#/components/schemas/{field.name}"}]
    else:
        prop["title"] = title_case(field.name)
        prop.update(ftype.json_type())
    optional = {_adt.Repetition.OPTIONAL, _adt.Repetition.OPTIONAL_REPEATED}
    nullable = ftype.repetition in optional
    written = raw_default is not inspect.Parameter.empty
    if ftype.primitive is _adt.PrimitiveType.SECRET and ftype.repetition is _adt.Repetition.REQUIRED:
        nullable = nullable or (written and field.default is None)
    has_default = field.default is not None or (written and nullable)
    is_union = getattr(ftype, "union_variants", None) is not None
    required = not has_default and (
        is_union or ftype.repetition in (_adt.Repetition.REQUIRED, _adt.Repetition.REPEATED)
    )
    if has_default:
        prop["default"] = None if field.default is None else ftype.json_encode(field.default)
    if nullable:
        prop["nullable"] = True
    if field.description is not None:
        prop["description"] = field.description
    for key, value in (("minimum", field.ge), ("maximum", field.le)):
        if value is not None:
            prop[key] = _number(value)
    for key, value in (("minLength", field.min_length), ("maxLength", field.max_length)):
        if value is not None:
            prop[key] = value
    if field.regex is not None:
        prop["pattern"] = field.regex
    if field.deprecated:
        prop["deprecated"] = True
    if isinstance(raw_default, FieldInfo) and raw_default.accept is not None:
        prop["x-cog-accept"] = raw_default.accept
    return prop, enum, required


def _error_schemas() -> dict[str, Any]:
    return {
        "HTTPValidationError": {
            "title": "HTTPValidationError",
            "type": "object",
            "properties": {
                "detail": {
                    "title": "Detail",
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/ValidationError"},
                }
            },
        },
        "ValidationError": {
            "title": "ValidationError",
            "required": ["loc", "msg", "type"],
            "type": "object",
            "properties": {
                "loc": {
                    "title": "Location",
                    "type": "array",
                    "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                },
                "msg": {"title": "Message", "type": "string"},
                "type": {"title": "Error Type", "type": "string"},
            },
        },
    }


def _components(input_schema: dict[str, Any], output: dict[str, Any], enums: list[dict]) -> dict[str, Any]:
    components: dict[str, Any] = {"Input": input_schema, "Output": output}
    components.update({enum["title"]: enum for enum in enums})
    string = {"type": "string"}
    components["PredictionRequest"] = {
        "title": "PredictionRequest",
        "type": "object",
        "properties": {"id": {"title": "Id", **string}, "input": {"$ref": "#/components/schemas/Input"}},
    }
    times = {key: {"title": title_case(key), **string, "format": "date-time"} for key in ("created_at",)}
    times |= {
        k: {"title": title_case(k), **string, "format": "date-time"} for k in ("started_at", "completed_at")
    }
    components["PredictionResponse"] = {
        "title": "PredictionResponse",
        "type": "object",
        "properties": {
            "input": {"$ref": "#/components/schemas/Input"},
            "output": {"$ref": "#/components/schemas/Output"},
            "id": {"title": "Id", **string},
            "version": {"title": "Version", **string},
            **times,
            "status": {"title": "Status", **string},
            "error": {"title": "Error", **string},
            "logs": {"title": "Logs", **string},
            "metrics": {"title": "Metrics", "type": "object"},
        },
    }
    components["Status"] = {
        "title": "Status",
        "description": "An enumeration.",
        "enum": ["starting", "processing", "succeeded", "canceled", "failed"],
        "type": "string",
    }
    return components | _error_schemas()


def _paths() -> dict[str, Any]:
    any_json: dict[str, Any] = {"application/json": {"schema": {}}}
    ok = {"200": {"description": "Successful Response", "content": any_json}}
    invalid = {
        "422": {
            "description": "Validation Error",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}},
        }
    }
    predict = {
        "summary": "Predict",
        "description": "Run a single prediction on the model",
        "operationId": "predict_predictions_post",
        "requestBody": {
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictionRequest"}}}
        },
        "responses": {
            "200": {
                "description": "Successful Response",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/PredictionResponse"}}
                },
            },
            **invalid,
        },
    }
    cancel = {
        "summary": "Cancel",
        "operationId": "cancel_predictions__prediction_id__cancel_post",
        "parameters": [
            {
                "required": True,
                "schema": {"title": "Prediction Id", "type": "string"},
                "name": "prediction_id",
                "in": "path",
            }
        ],
        "responses": {**ok, **invalid},
    }
    return {
        "/": {"get": {"summary": "Root", "operationId": "root__get", "responses": ok}},
        "/health-check": {
            "get": {"summary": "Healthcheck", "operationId": "healthcheck_health_check_get", "responses": ok}
        },
        "/predictions": {"post": predict},
        "/predictions/{prediction_id}/cancel": {"post": cancel},
    }


def _fix_nullable_any_of(node: Any) -> None:
    """`{"anyOf": [T, {"type": "null"}]}` becomes `T` with `nullable: true` (OpenAPI 3.0 has no null type)."""
    if isinstance(node, list):
        for child in node:
            _fix_nullable_any_of(child)
        return
    if not isinstance(node, dict):
        return
    for child in node.values():
        _fix_nullable_any_of(child)
    variants = node.get("anyOf")
    if isinstance(variants, list) and len(variants) == 2 and all(isinstance(v, dict) for v in variants):
        others = [v for v in variants if v.get("type") != "null"]
        if len(others) == 1:
            del node["anyOf"]
            node.update(others[0])
            node["nullable"] = True


def openapi_schema(predict: str, project: Path) -> dict[str, Any]:
    """The OpenAPI document for `predict` (`file.py:Name`), importing it from `project` as coglet would."""
    import cog
    from cog import _inspector

    module_file, _, predictor_name = predict.partition(":")
    module_name = Path(module_file).with_suffix("").as_posix().replace("/", ".")
    if str(project) not in sys.path:
        sys.path.insert(0, str(project))
    with warnings.catch_warnings():  # `predict:` is kept on purpose (README); Cog's deprecation says so
        warnings.filterwarnings(
            "ignore", message=r".*(predict\(\)|BasePredictor) is deprecated", category=DeprecationWarning
        )
        info = _inspector.create_predictor(module_name, predictor_name)
        raw = _raw_defaults(module_name, predictor_name)
    properties: dict[str, Any] = {}
    required: list[str] = []
    enums: list[dict[str, Any]] = []
    for name, field in sorted(info.inputs.items(), key=lambda item: item[1].order):
        prop, enum, is_required = _input_property(field, raw.get(name, inspect.Parameter.empty))
        properties[name] = prop
        enums += [enum] if enum else []
        required += [name] if is_required else []
    input_schema: dict[str, Any] = {"title": "Input", "type": "object", "properties": properties}
    if required:
        input_schema["required"] = required
    spec = {
        "openapi": "3.0.2",
        "info": {"title": "Cog", "version": getattr(cog, "__version__", "")},
        "paths": _paths(),
        "components": {"schemas": _components(input_schema, info.output.json_type(), enums)},
    }
    _fix_nullable_any_of(spec)
    return spec


def write_schema(predict: str, project: Path, path: Path | None = None) -> Path:
    """Write the schema to `path` (default `<project>/.cog/openapi_schema.json`) atomically; return it."""
    target = path or project / SCHEMA_PATH
    text = json.dumps(openapi_schema(predict, project), separators=(",", ":"))
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temporary.write_text(text + "\n", encoding="utf-8")
    os.replace(temporary, target)
    return target
