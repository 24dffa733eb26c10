"""The registry's Function documents as plain Python objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format

from toolmesh.v1 import registry_pb2

__all__ = ["FunctionInfo"]


@dataclass(frozen=True, slots=True)
class FunctionInfo:
    """A registered function: its name, documentation and JSON Schemas."""

    name: str
    documentation: str
    parameters_schema: dict[str, Any]
    result_schema: dict[str, Any]
    model: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    #: False when no model server can run it now (e.g. its weights are not installed).
    available: bool = True
    #: Why it is unavailable, naming the fix (e.g. ``toolmesh models pull clip``).
    unavailable_reason: str = ""

    @classmethod
    def from_proto(cls, message: registry_pb2.Function) -> FunctionInfo:
        return cls(
            name=message.name,
            documentation=message.documentation,
            parameters_schema=_integral(json_format.MessageToDict(message.parameters_schema)),
            result_schema=_integral(json_format.MessageToDict(message.result_schema)),
            model=message.model,
            labels=dict(message.labels),
            available=message.available if message.HasField("available") else True,
            unavailable_reason=message.unavailable_reason,
        )

    def signature(self) -> str:
        """A Python-like signature, e.g. ``find(image, object_name, threshold=0.3)``."""
        props: dict[str, Any] = self.parameters_schema.get("properties", {})
        required: list[str] = list(self.parameters_schema.get("required", []))
        optional = [name for name in props if name not in required]
        parts = required + [
            f"{name}={props[name]['default']!r}" if "default" in props[name] else f"{name}=None"
            for name in optional
        ]
        return f"{self.name}({', '.join(parts)})"


def _integral(obj: Any) -> Any:
    """Undo protobuf Struct's doubles-only numbers, so ``10`` reads back as ``10``, not ``10.0``."""
    if isinstance(obj, dict):
        return {k: _integral(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_integral(v) for v in obj]
    if isinstance(obj, float) and obj.is_integer():
        return int(obj)
    return obj
