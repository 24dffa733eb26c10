"""Exceptions raised by toolmesh_models.

Hierarchy::

    ValueError
    ├── ArgumentError    a request the caller can fix (answered as INVALID_ARGUMENT)
    ├── PlacementError   placement.yaml or the GPU inventory is inconsistent
    └── RepositoryError  a model directory or config.pbtxt cannot be rendered
    RuntimeError
    └── WeightsMissing   a model's weights are not in the model store (it does not load)

The first three derive from ``ValueError`` because each one means "this input is wrong",
and callers that do not know this package still catch them sensibly.
"""

from __future__ import annotations

__all__ = [
    "WEIGHTS_MISSING",
    "ArgumentError",
    "PlacementError",
    "RepositoryError",
    "WeightsMissing",
]


class ArgumentError(ValueError):
    """A bad request that the caller can fix; the message says how."""


class PlacementError(ValueError):
    """placement.yaml is malformed or asks for GPUs the machine does not have."""


class RepositoryError(ValueError):
    """A model of the source repository cannot be rendered (bad config, missing model)."""


WEIGHTS_MISSING = "WeightsMissing"
"""The class name Triton writes into a model's load-failure reason (``Internal: WeightsMissing: …``);
the gateway recognises it to answer FAILED_PRECONDITION with the message."""


class WeightsMissing(RuntimeError):
    """A model's weights are not in the model store; the message names the pull command.

    Raised from a model's ``initialize``: Triton then keeps the model UNAVAILABLE
    with this message as the reason, which the gateway reports for the function.
    """
