"""Calling ``find`` from inside Triton (business logic scripting), for exists, count, verify_property.

These functions are built on ``find`` without a client round trip: the calling
model sends a BLS request to the ``find`` model of the same server, so they use
whichever detector ``find`` runs (CenterNet or OWLv2), its instances and its
dynamic batcher. Only :func:`find` touches ``triton_python_backend_utils``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .errors import ArgumentError
from .imaging import to_uint8

try:
    import triton_python_backend_utils as pb_utils
except ImportError:  # outside Triton
    pb_utils = None

__all__ = ["FIND_MAX_BATCH_SIZE", "FIND_MODEL", "Found", "find"]

FIND_MODEL = "find"
FIND_MAX_BATCH_SIZE = 8
"""``max_batch_size`` of ``repository/find/config.pbtxt`` (a test keeps the two equal):
BLS tensors must carry the batch dimension the model declares."""


class Found(NamedTuple):
    boxes: np.ndarray
    """float32 [N, 4]: x1, y1, x2, y2 in pixels of the image."""
    scores: np.ndarray
    labels: list[str]


def find(image: np.ndarray, object_name: str, threshold: float, *, timeout_ms: int = 0) -> Found:
    """Run ``find`` on one image through Triton (blocking the calling instance until it answers).

    Raises:
        ArgumentError: ``find`` refused the request (e.g. a name its detector
            cannot name); its message is passed on.
        RuntimeError: ``find`` failed otherwise or is not loaded.
    """
    batched = FIND_MAX_BATCH_SIZE > 0

    def tensor(name: str, array: np.ndarray) -> Any:
        return pb_utils.Tensor(name, array[np.newaxis] if batched else array)

    request = pb_utils.InferenceRequest(
        model_name=FIND_MODEL,
        inputs=[
            tensor("image_array", np.ascontiguousarray(to_uint8(image))),
            tensor("object_name", np.array([object_name.encode("utf-8")], dtype=np.object_)),
            tensor("threshold", np.array([threshold], dtype=np.float32)),
        ],
        requested_output_names=["box", "score", "label"],
        timeout=timeout_ms * 1000 if timeout_ms else 0,
    )
    response = request.exec()
    if response.has_error():
        message = response.error().message()
        if _is_argument_error(message):
            raise ArgumentError(message)
        raise RuntimeError(f"find failed: {message}")

    def output(name: str) -> np.ndarray:
        array = pb_utils.get_output_tensor_by_name(response, name).as_numpy()
        return array[0] if batched else array

    labels = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in output("label")]
    return Found(
        output("box").reshape(-1, 4).astype(np.float32), output("score").astype(np.float32), labels
    )


def _is_argument_error(message: str) -> bool:
    """Whether ``find`` refused the request itself (the caller's mistake) rather than failed.

    BLS responses lose the error code (an INVALID_ARG arrives as INTERNAL), so the
    message decides: ``FunctionModel`` prefixes its internal errors with
    ``"find: internal error:"``, and Triton's own failures name the model
    ("model 'find' is not ready", "Failed for execute the inference request").
    Everything else ``find`` answers is an argument error with a message meant
    for the caller.
    """
    lowered = message.lower()
    return not (
        lowered.startswith(f"{FIND_MODEL}: internal error")
        or f"'{FIND_MODEL}'" in lowered
        or "failed for execute" in lowered
        or "timeout" in lowered
    )
