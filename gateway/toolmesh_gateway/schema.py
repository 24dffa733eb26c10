"""JSON Schema validation that understands images and bytes.

Function schemas stay standard JSON Schema: an image is
``{"type": "string", "format": "image"}`` and raw bytes are
``{"type": "string", "format": "binary"}``, as OpenAPI writes binary strings.
At validation time those "strings" are ``RawImage`` / ``bytes`` objects, so the
validator's notion of a string is widened for them and the string-length
keywords apply to text only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import fastjsonschema
import jsonschema
import jsonschema.exceptions
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.protocols import Validator

from toolmesh.wire import RawImage

__all__ = [
    "Check",
    "Problem",
    "Validator",
    "compile_check",
    "image_parameters",
    "make_validator",
    "with_defaults",
]

_format_checker = FormatChecker()


@_format_checker.checks("image")
def _is_image(instance: object) -> bool:
    return isinstance(instance, RawImage) or not isinstance(instance, str | bytes)


@_format_checker.checks("binary")
def _is_binary(instance: object) -> bool:
    return isinstance(instance, bytes) or not isinstance(instance, str | RawImage)


def _is_string(_checker: object, instance: object) -> bool:
    return isinstance(instance, str | bytes | RawImage)


def _text_only(keyword: Any) -> Any:
    def check(validator: Any, value: Any, instance: Any, schema: Any) -> Iterator[Any]:
        if isinstance(instance, str):
            yield from keyword(validator, value, instance, schema)

    return check


_ToolmeshValidator = jsonschema.validators.extend(
    Draft202012Validator,
    validators={
        keyword: _text_only(Draft202012Validator.VALIDATORS[keyword])
        for keyword in ("minLength", "maxLength", "pattern")
    },
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("string", _is_string),
)


def make_validator(schema: Mapping[str, Any]) -> Validator:
    """A validator for a function schema; raises ``SchemaError`` if the schema is invalid."""
    _ToolmeshValidator.check_schema(schema)
    validator: Validator = _ToolmeshValidator(schema, format_checker=_format_checker)
    return validator


def image_parameters(parameters_schema: Mapping[str, Any]) -> frozenset[str]:
    """Names of the top-level parameters that are images."""
    props: Mapping[str, Any] = parameters_schema.get("properties", {})
    return frozenset(n for n, s in props.items() if s.get("format") == "image")


def with_defaults(parameters_schema: Mapping[str, Any], arguments: dict[str, Any]) -> None:
    """Fill absent top-level arguments from their schema ``default``, in place."""
    for name, spec in parameters_schema.get("properties", {}).items():
        if name not in arguments and "default" in spec:
            arguments[name] = spec["default"]


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a value does not match its schema: the field (``threshold``, ``[0].box``) and why."""

    field: str
    message: str


Check = Callable[[Any], Problem | None]


def _field(path: Iterable[Any]) -> str:
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    return text.lstrip(".")


def _uses_binary_formats(schema: Mapping[str, Any]) -> bool:
    text = json.dumps(schema)
    return '"format": "image"' in text or '"format": "binary"' in text


def compile_check(schema: Mapping[str, Any]) -> Check:
    """A checker for one schema, compiled once at registration.

    Schemas over plain JSON data (such as ``find``'s list of detections) are
    compiled to Python code by ``fastjsonschema``, about 25× faster than
    ``jsonschema`` on a list of detections: result validation runs on every
    call. Schemas with images or bytes keep the extended ``jsonschema``
    validator, which knows those types; their values are small trees.
    """
    validator = make_validator(schema)
    if not _uses_binary_formats(schema):
        try:
            fast = fastjsonschema.compile(dict(schema))
        except fastjsonschema.JsonSchemaDefinitionException:
            pass  # a keyword fastjsonschema lacks: jsonschema handles it below
        else:

            def check_fast(instance: Any) -> Problem | None:
                try:
                    fast(instance)
                except fastjsonschema.JsonSchemaValueException as exc:
                    path = [int(p) if p.isdigit() else p for p in exc.path[1:]]
                    message = exc.message.removeprefix(exc.name).strip()
                    return Problem(_field(path), message)
                return None

            return check_fast

    def check(instance: Any) -> Problem | None:
        error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
        if error is None:
            return None
        return Problem(_field(error.absolute_path), error.message)

    return check
