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
    "RegistryHolder",
    "as_holder",
    "function_name",
    "load_function_file",
    "load_registry",
    "parse_function_resource",
]

#: ``metadata.name``: a Kubernetes object name (RFC 1123 label, starting with a letter), since
#: the same documents are custom resources. The function's name is this with each ``-`` read as
#: ``_`` (``color-depth`` → ``color_depth``): Kubernetes names cannot hold ``_``.
NAME_PATTERN = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"

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


def function_name(resource_name: str) -> str:
    """The function a ``kind: Function`` resource named ``resource_name`` defines."""
    return resource_name.replace("-", "_")


def _check_resource_name(document: Any, source: str) -> None:
    """A friendlier error than the pattern's for the one mistake easy to make: ``_``."""
    metadata = document.get("metadata") if isinstance(document, dict) else None
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if isinstance(name, str) and "_" in name:
        raise FunctionDocumentError(
            f"{source}: metadata.name: {name!r}: Kubernetes object names cannot contain '_'; "
            f"write {name.replace('_', '-')!r} (the function is still called {name!r})"
        )


def parse_function_resource(document: Any, source: str) -> FunctionSpec:
    """A FunctionSpec from one parsed ``kind: Function`` document."""
    _check_resource_name(document, source)
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
        name=function_name(metadata["name"]),
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


class RegistryHolder:
    """The registry the servicers read, replaced as a whole when Functions change (Kubernetes).

    Reads (``get``, ``names``, iteration, ``len``, ``models``) go to the current
    registry; ``replace`` swaps it in one assignment, so a call sees either the
    old registry or the new one, never a mix. Safe to replace from another thread.
    """

    def __init__(self, registry: Registry) -> None:
        self._current = registry

    @property
    def current(self) -> Registry:
        return self._current

    def replace(self, registry: Registry) -> None:
        self._current = registry

    def get(self, name: str) -> FunctionSpec | None:
        return self._current.get(name)

    def names(self) -> list[str]:
        return self._current.names()

    def __iter__(self) -> Any:
        return iter(self._current)

    def __len__(self) -> int:
        return len(self._current)

    def models(self) -> set[str]:
        return self._current.models()


def as_holder(registry: Registry | RegistryHolder) -> RegistryHolder:
    """``registry`` itself if it is a holder, else a holder of it (a fixed registry)."""
    return registry if isinstance(registry, RegistryHolder) else RegistryHolder(registry)


def load_registry(directory: Path) -> Registry:
    """All ``*.yaml``/``*.yml`` files of a directory, sorted by name."""
    if not directory.is_dir():
        raise FunctionDocumentError(f"{directory}: functions directory does not exist")
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    return Registry(spec for path in files for spec in load_function_file(path))
