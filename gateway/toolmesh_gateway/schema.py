"""JSON Schema validation that understands images and bytes.

Function schemas stay standard JSON Schema: an image is
``{"type": "string", "format": "image"}`` and raw bytes are
``{"type": "string", "format": "binary"}``, as OpenAPI writes binary strings.
At validation time those "strings" are ``RawImage`` / ``bytes`` objects, so the
validator's notion of a string is widened for them and the string-length
keywords apply to text only.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.protocols import Validator
from toolmesh._values import RawImage

__all__ = ["Validator", "image_parameters", "make_validator", "with_defaults"]

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
