"""The other parts of toolmesh, found through entry points instead of imports.

The client sits at the bottom of the import graph: the gateway, the models, the
codegen agent and the local orchestration import it, never the reverse. Where
the client offers something another part implements (``toolmesh up``, the
in-process baseline, ``toolmesh.codegen``), that part registers an entry point
and the client looks it up by name. A part that is not installed is an error
that says exactly what to install.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

from toolmesh._exceptions import ToolmeshError

__all__ = ["CLI_GROUP", "EXTENSION_GROUP", "PARTS", "MissingPart", "load", "missing", "plugins"]

#: Entry-point group of CLI plugins: ``name = "module:register"``, ``register(app)``.
CLI_GROUP = "toolmesh.cli"
#: Entry-point group of objects the client uses by name (``codegen``, ``inprocess``).
EXTENSION_GROUP = "toolmesh.extensions"

#: Each part (or optional library) and the client extra that installs it.
PARTS: dict[str, tuple[str, str]] = {
    "local": ("toolmesh-local", "toolmesh[local]"),
    "codegen": ("toolmesh-codegen", "toolmesh[codegen]"),
    "otel": ("the OpenTelemetry SDK", "toolmesh[otel]"),
    "plots": ("matplotlib", "toolmesh[plots]"),
    "utilisation": ("psutil", "toolmesh[utilisation]"),
}


class MissingPart(ToolmeshError, ImportError):
    """A feature needs a part of toolmesh that is not installed; the message says which."""


def missing(part: str, feature: str) -> MissingPart:
    """The error for ``feature`` when ``part`` is not installed."""
    distribution, extra = PARTS[part]
    return MissingPart(
        f"{feature} needs {distribution}, which is not installed: pip install '{extra}'"
    )


def plugins(group: str = CLI_GROUP) -> list[EntryPoint]:
    """The installed entry points of ``group``, in name order (stable ``--help``)."""
    return sorted(entry_points(group=group), key=lambda e: e.name)


def load(name: str, *, part: str, feature: str) -> Any:
    """The object registered as ``name`` in the extensions group, or :class:`MissingPart`."""
    for entry in entry_points(group=EXTENSION_GROUP, name=name):
        return entry.load()
    raise missing(part, feature)
