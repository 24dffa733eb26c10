"""Function documents: loaded from ``kind: Function`` YAML files, checked, compiled.

The same files are the local registry and, in a cluster, the custom resources,
so they are validated against one schema of the resource (``FUNCTION_RESOURCE_SCHEMA``)
and every error names the file and the field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from google.protobuf import json_format, struct_pb2

from toolmesh.v1 import registry_pb2
from toolmesh_gateway.schema import Check, compile_check, image_parameters, make_validator

__all__ = [
    "FUNCTION_RESOURCE_SCHEMA",
    "FunctionDocumentError",
    "FunctionSpec",
    "Registry",
    "load_function_file",
    "load_registry",
    "parse_function_resource",
]

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"

#: Shape of a ``kind: Function`` resource; the CRD in deploy/ is generated from this.
FUNCTION_RESOURCE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "toolmesh.dev/v1"},
        "kind": {"const": "Function"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": NAME_PATTERN},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["model", "documentation", "parametersSchema", "resultSchema"],
            "properties": {
                "model": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string", "minLength": 1},
                        "version": {"type": "string"},
                    },
                },
                "documentation": {"type": "string", "minLength": 20},
                "parametersSchema": {
                    "type": "object",
                    "required": ["type", "properties"],
                    "properties": {"type": {"const": "object"}},
                },
                "resultSchema": {"type": "object"},
            },
        },
    },
}

_resource_validator = jsonschema.Draft202012Validator(FUNCTION_RESOURCE_SCHEMA)


class FunctionDocumentError(ValueError):
    """A Function document is malformed; the message names the source and the field."""


@dataclass(frozen=True, slots=True, eq=False)
class FunctionSpec:
    """A registered function, with its schemas compiled once for every call."""

    name: str
    documentation: str
    parameters_schema: Mapping[str, Any]
    result_schema: Mapping[str, Any]
    model: str
    model_version: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    source: str = ""
    check_parameters: Check = field(init=False, repr=False)
    check_result: Check = field(init=False, repr=False)
    image_parameters: frozenset[str] = field(init=False)
    required: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        setter = object.__setattr__
        setter(self, "check_parameters", compile_check(self.parameters_schema))
        setter(self, "check_result", compile_check(self.result_schema))
        setter(self, "image_parameters", image_parameters(self.parameters_schema))
        setter(self, "required", tuple(self.parameters_schema.get("required", ())))

    @property
    def parameter_names(self) -> list[str]:
        return list(self.parameters_schema.get("properties", {}))

    def to_proto(self) -> registry_pb2.Function:
        message = registry_pb2.Function(
            name=self.name,
            documentation=self.documentation,
            model=self.model,
            labels=dict(self.labels),
        )
        message.parameters_schema.CopyFrom(_struct(self.parameters_schema))
        message.result_schema.CopyFrom(_struct(self.result_schema))
        return message


def _struct(mapping: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    json_format.ParseDict(mapping, struct)
    return struct


def _field_path(parts: Iterable[Any]) -> str:
    path = ".".join(str(p) for p in parts)
    return path or "(document)"


def parse_function_resource(document: Any, source: str) -> FunctionSpec:
    """A FunctionSpec from one parsed ``kind: Function`` document."""
    errors = sorted(_resource_validator.iter_errors(document), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        raise FunctionDocumentError(
            f"{source}: {_field_path(first.absolute_path)}: {first.message}"
        )
    spec = document["spec"]
    for key in ("parametersSchema", "resultSchema"):
        try:
            make_validator(spec[key])
        except jsonschema.SchemaError as exc:
            where = _field_path(["spec", key, *exc.absolute_path])
            raise FunctionDocumentError(
                f"{source}: {where}: not a valid JSON Schema: {exc.message}"
            ) from exc
    params = spec["parametersSchema"]
    for name in params.get("required", []):
        if name not in params["properties"]:
            raise FunctionDocumentError(
                f"{source}: spec.parametersSchema.required: {name!r} is not a declared property"
            )
    for name in params["properties"]:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            raise FunctionDocumentError(
                f"{source}: spec.parametersSchema.properties.{name}: parameter names must be "
                "Python identifiers (they are keyword arguments)"
            )
    metadata = document["metadata"]
    return FunctionSpec(
        name=metadata["name"],
        documentation=spec["documentation"].strip(),
        parameters_schema=params,
        result_schema=spec["resultSchema"],
        model=spec["model"]["name"],
        model_version=spec["model"].get("version", ""),
        labels=dict(metadata.get("labels", {})),
        source=source,
    )


def load_function_file(path: Path) -> list[FunctionSpec]:
    """Every Function in one YAML file (a file may hold several documents)."""
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    except yaml.YAMLError as exc:
        raise FunctionDocumentError(f"{path}: not valid YAML: {exc}") from exc
    if not documents:
        raise FunctionDocumentError(f"{path}: no document in file")
    return [parse_function_resource(d, str(path)) for d in documents]


class Registry:
    """Functions by name. Read-only once built; rebuilt, not mutated, on reload."""

    def __init__(self, functions: Iterable[FunctionSpec]) -> None:
        self._functions: dict[str, FunctionSpec] = {}
        for function in functions:
            if function.name in self._functions:
                other = self._functions[function.name].source
                raise FunctionDocumentError(
                    f"{function.source}: metadata.name: function {function.name!r} is also "
                    f"defined in {other}"
                )
            self._functions[function.name] = function

    def get(self, name: str) -> FunctionSpec | None:
        return self._functions.get(name)

    def names(self) -> list[str]:
        return sorted(self._functions)

    def __iter__(self) -> Any:
        return iter(self._functions[n] for n in self.names())

    def __len__(self) -> int:
        return len(self._functions)

    def models(self) -> set[str]:
        return {f.model for f in self._functions.values()}


def load_registry(directory: Path) -> Registry:
    """All ``*.yaml``/``*.yml`` files of a directory, sorted by name."""
    if not directory.is_dir():
        raise FunctionDocumentError(f"{directory}: functions directory does not exist")
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    return Registry(spec for path in files for spec in load_function_file(path))
