"""Turning command-line text into typed arguments, and results into JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from toolmesh.wire import ArgumentError

__all__ = ["image_file", "parse_assignments"]


def image_file(name: str, text: str) -> Path:
    """The image file an argument names: ``path`` or, as curl writes it, ``@path``.

    Raises:
        ArgumentError: empty, missing, a directory, or unreadable (named, in one line).
    """
    given = text[1:] if text.startswith("@") else text
    if not given:
        raise ArgumentError(name, "needs an image file, e.g. image=frame.jpg")
    path = Path(given)
    if not path.exists():
        raise ArgumentError(name, f"no such file: {given!r}")
    if not path.is_file():
        raise ArgumentError(name, f"{given!r} is not a file")
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise ArgumentError(name, f"cannot read {given!r}: {exc.strerror}") from exc
    return path


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
        return image_file(name, text)
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
