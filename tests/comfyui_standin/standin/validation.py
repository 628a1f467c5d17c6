"""`POST /prompt` validation, rule for rule as ComfyUI's `execution.validate_prompt`, driven by object_info.

Only nodes that an output node depends on are checked. Each error has ComfyUI's `type`, `message`,
`details` and `extra_info`; a prompt with some valid outputs is accepted (its `node_errors` filled)
and only those outputs run. Values are converted in place (`"64"` becomes `64` for an INT), as ComfyUI
does, so the queued prompt and the history show the converted values. Inputs are checked in the
class's declared order (ComfyUI's order varies from run to run).
"""

from __future__ import annotations

import logging
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any

from .catalog import Catalog
from .errors import full_type_name
from .folders import Folders
from .graph import Prompt, node_inputs
from .nodes import NodeLibrary

log = logging.getLogger(__name__)

_CONVERSIONS = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}


@dataclass(frozen=True)
class Validation:
    ok: bool
    error: dict[str, Any] | None
    good_outputs: list[str] = field(default_factory=list)
    node_errors: dict[str, dict[str, Any]] = field(default_factory=dict)


def _error(
    type_: str, message: str, details: str, extra_info: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {"type": type_, "message": message, "details": details, "extra_info": extra_info or {}}


def validate_prompt(
    prompt: Prompt,
    catalog: Catalog,
    library: NodeLibrary,
    folders: Folders,
    partial_targets: list[str] | None,
) -> Validation:
    """Check a prompt; raises (a 500 for the server) where ComfyUI would, e.g. for a non-dict node."""
    unknown = _unknown_node(prompt, catalog)
    if unknown is not None:
        return unknown
    outputs = [  # iterated as ComfyUI does, so a prompt that is not a dict fails as there
        node_id
        for node_id in prompt
        if catalog.is_output(prompt[node_id]["class_type"])
        and (partial_targets is None or node_id in partial_targets)
    ]
    if not outputs:
        return Validation(False, _error("prompt_no_outputs", "Prompt has no outputs", ""))

    checker = _NodeChecker(prompt, catalog, library, folders)
    good_outputs: list[str] = []
    failures: list[tuple[str, list[dict[str, Any]]]] = []
    node_errors: dict[str, dict[str, Any]] = {}
    for output in outputs:
        valid, reasons = _check_output(checker, output)
        if valid:
            good_outputs.append(output)
            continue
        log.error("Failed to validate prompt for output %s:", output)
        failures.append((output, reasons))
        _add_node_errors(node_errors, checker, output)
        log.error("Output will be ignored")

    if not good_outputs:
        details = "\n".join(f"{e['message']}: {e['details']}" for _, reasons in failures for e in reasons)
        error = _error("prompt_outputs_failed_validation", "Prompt outputs failed validation", details)
        return Validation(False, error, [], node_errors)
    return Validation(True, None, good_outputs, node_errors)


def _unknown_node(prompt: Prompt, catalog: Catalog) -> Validation | None:
    """The refusal of the first node without a `class_type`, or of a class ComfyUI does not have."""
    for node_id in prompt:
        node = prompt[node_id]
        if "class_type" not in node:
            message = "Cannot execute because a node is missing the class_type property."
            return Validation(False, _error("invalid_prompt", message, f"Node ID '#{node_id}'"))
        class_type = node["class_type"]
        if class_type not in catalog:
            message = f"Cannot execute because node {class_type} does not exist."
            return Validation(False, _error("invalid_prompt", message, f"Node ID '#{node_id}'"))
    return None


def _check_output(checker: _NodeChecker, output: str) -> tuple[bool, list[dict[str, Any]]]:
    """An output node's (valid, errors); an exception while checking it is its error."""
    try:
        return checker.check(output)
    except Exception as ex:
        reasons = [
            _error(
                "exception_during_validation",
                "Exception when validating node",
                str(ex),
                {
                    "exception_type": full_type_name(type(ex)),
                    "traceback": traceback.format_tb(sys.exc_info()[2]),
                },
            )
        ]
        checker.validated[output] = (False, reasons)
        return False, reasons


def _add_node_errors(node_errors: dict[str, dict[str, Any]], checker: _NodeChecker, output: str) -> None:
    """File every invalid node checked so far under `node_errors`, with `output` among its dependents."""
    for node_id, (node_valid, node_reasons) in checker.validated.items():
        if node_valid is not True and node_reasons:
            entry = node_errors.setdefault(
                node_id,
                {
                    "errors": node_reasons,
                    "dependent_outputs": [],
                    "class_type": checker.prompt[node_id]["class_type"],
                },
            )
            entry["dependent_outputs"].append(output)


class _NodeChecker:
    """Validates nodes once each, following links upstream (ComfyUI's validate_inputs)."""

    def __init__(self, prompt: Prompt, catalog: Catalog, library: NodeLibrary, folders: Folders) -> None:
        self.prompt = prompt
        self.catalog = catalog
        self.library = library
        self.folders = folders
        self.validated: dict[str, tuple[bool, list[dict[str, Any]]]] = {}

    def check(self, node_id: str) -> tuple[bool, list[dict[str, Any]]]:
        """(valid, errors) of a node; a node is invalid without errors of its own if an upstream one is."""
        if node_id in self.validated:
            return self.validated[node_id]
        inputs = self.prompt[node_id]["inputs"]
        class_type = self.prompt[node_id]["class_type"]
        spec = self.catalog.inputs(class_type)
        own_check, checked_inputs = self.library.own_check(class_type)
        errors: list[dict[str, Any]] = []
        upstream_valid = True
        for name in self.catalog.input_order(class_type):
            category = "required" if name in spec.get("required", {}) else "optional"
            declared = spec[category][name]
            input_type, extra_info = declared[0], declared[1] if len(declared) > 1 else {}
            if name not in inputs:
                if category == "required":
                    extra = {"input_name": name}
                    errors.append(_error("required_input_missing", "Required input is missing", name, extra))
                continue
            if isinstance(inputs[name], list):
                error, linked_valid = self._check_link(name, inputs[name], input_type, extra_info)
                upstream_valid = upstream_valid and linked_valid
            else:
                error = _check_value(inputs, name, input_type, extra_info, ranges=name not in checked_inputs)
            if error is not None:
                errors.append(error)

        if own_check is not None:
            errors.extend(self._custom_validation(node_id, own_check, checked_inputs))
        result = (False, errors) if errors or not upstream_valid else (True, [])
        self.validated[node_id] = result
        return result

    def _check_link(
        self, name: str, link: list[Any], input_type: Any, extra_info: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, bool]:
        """An error of this input, and whether the linked node is valid (checked here, recursively)."""
        config = [input_type, extra_info]
        if len(link) != 2:
            message = "Bad linked input, must be a length-2 list of [node_id, slot_index]"
            extra = {"input_name": name, "input_config": config, "received_value": link}
            return _error("bad_linked_input", message, name, extra), True
        source = link[0]
        received_type = self.catalog.return_types(self.prompt[source]["class_type"])[link[1]]
        if not _types_match(received_type, input_type):
            details = f"{name}, received_type({received_type}) mismatch input_type({input_type})"
            extra = {
                "input_name": name,
                "input_config": config,
                "received_type": received_type,
                "linked_node": link,
            }
            return _error(
                "return_type_mismatch", "Return type mismatch between linked nodes", details, extra
            ), True
        try:
            return None, self.check(source)[0] is not False
        except Exception as ex:
            extra = {
                "input_name": name,
                "input_config": config,
                "exception_message": str(ex),
                "exception_type": full_type_name(type(ex)),
                "traceback": traceback.format_tb(sys.exc_info()[2]),
                "linked_node": link,
            }
            message = "Exception when validating inner node"
            self.validated[source] = (
                False,
                [_error("exception_during_inner_validation", message, str(ex), extra)],
            )
            return None, False

    def _custom_validation(
        self, node_id: str, validate: Any, arguments: tuple[str, ...]
    ) -> list[dict[str, Any]]:
        """Call the class's own check with its constant inputs; every non-True answer fails each input."""
        values, _ = node_inputs(self.prompt, node_id, self.catalog, None, {})
        chosen = {name: values[name] for name in values if name in arguments}
        length = max((len(v) for v in chosen.values()), default=0)
        answers = [
            validate(self.folders, **{k: v[min(i, len(v) - 1)] for k, v in chosen.items()})
            for i in range(length)
        ]
        if not chosen:
            answers = [validate(self.folders)]
        errors = []
        for name in chosen:
            for answer in answers:
                if answer is not True:
                    details = name if answer is False else f"{name} - {answer}"
                    errors.append(
                        _error(
                            "custom_validation_failed",
                            "Custom validation failed for node",
                            details,
                            {"input_name": name},
                        )
                    )
        return errors


def _types_match(received: Any, expected: Any) -> bool:
    """ComfyUI's validate_node_input: equal, or comma-separated type lists that overlap."""
    if received == expected:
        return True
    if not isinstance(received, str) or not isinstance(expected, str):
        return False
    return bool({t.strip() for t in received.split(",")} & {t.strip() for t in expected.split(",")})


def _check_value(
    inputs: dict[str, Any], name: str, input_type: Any, extra_info: dict[str, Any], *, ranges: bool
) -> dict[str, Any] | None:
    """Convert a constant to its declared type in place, then check min, max and combo choices."""
    config = [input_type, extra_info]
    value = inputs[name]
    try:
        if isinstance(value, dict) and "__value__" in value:
            value = inputs[name] = value["__value__"]
        if isinstance(input_type, str) and input_type in _CONVERSIONS:
            value = inputs[name] = _CONVERSIONS[input_type](value)
    except Exception as ex:
        extra = {
            "input_name": name,
            "input_config": config,
            "received_value": value,
            "exception_message": str(ex),
        }
        message = f"Failed to convert an input value to a {input_type} value"
        return _error("invalid_input_type", message, f"{name}, {value}, {ex}", extra)
    if not ranges:  # the class's own VALIDATE_INPUTS checks this input instead
        return None
    extra = {"input_name": name, "input_config": config, "received_value": value}
    if "min" in extra_info and value < extra_info["min"]:
        return _error(
            "value_smaller_than_min", f"Value {value} smaller than min of {extra_info['min']}", name, extra
        )
    if "max" in extra_info and value > extra_info["max"]:
        return _error(
            "value_bigger_than_max", f"Value {value} bigger than max of {extra_info['max']}", name, extra
        )
    if isinstance(input_type, list) and value not in input_type:
        if len(input_type) > 20:  # ComfyUI does not send back long lists such as model file names
            listed, extra["input_config"] = f"(list of length {len(input_type)})", None
        else:
            listed = str(input_type)
        return _error("value_not_in_list", "Value not in list", f"{name}: '{value}' not in {listed}", extra)
    return None
