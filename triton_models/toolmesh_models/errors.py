"""Exceptions raised by toolmesh_models.

Hierarchy::

    ValueError
    ├── ArgumentError    a request the caller can fix (answered as INVALID_ARGUMENT)
    ├── PlacementError   placement.yaml or the GPU inventory is inconsistent
    └── RepositoryError  a model directory or config.pbtxt cannot be rendered

All three derive from ``ValueError`` because each one means "this input is wrong",
and callers that do not know this package still catch them sensibly.
"""

from __future__ import annotations

__all__ = ["ArgumentError", "PlacementError", "RepositoryError"]


class ArgumentError(ValueError):
    """A bad request that the caller can fix; the message says how."""


class PlacementError(ValueError):
    """placement.yaml is malformed or asks for GPUs the machine does not have."""


class RepositoryError(ValueError):
    """A model of the source repository cannot be rendered (bad config, missing model)."""
