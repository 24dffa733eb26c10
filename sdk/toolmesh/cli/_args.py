"""Turning command-line text into typed arguments, and results into JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["parse_assignments"]


def _coerce(name: str, text: str, schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            return float(text)
        if kind == "boolean":
            lowered = text.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return lowered in ("true", "1", "yes")
        if kind in ("array", "object"):
            return json.loads(text)
    except ValueError as exc:
        raise ValueError(f"argument {name}: {text!r} is not a valid {kind}") from exc
    if schema.get("format") == "image":
        return Path(text)
    return text


def parse_assignments(items: list[str], parameters_schema: dict[str, Any]) -> dict[str, Any]:
    """``key=value`` pairs typed by the function's parameter schema."""
    properties: dict[str, Any] = parameters_schema.get("properties", {})
    arguments: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"expected key=value, got {item!r}")
        arguments[key] = _coerce(key, value, properties.get(key, {}))
    return arguments
