"""Triton model ``greyscale``: ITU-R 601-2 luma of an image."""

from __future__ import annotations

import numpy as np

from toolmesh_models import ops
from toolmesh_models.backend import FunctionModel


class TritonPythonModel(FunctionModel):
    """greyscale(image) -> result [H, W, 1] uint8."""

    def run(self, image: np.ndarray) -> dict[str, object]:
        """Convert ``image`` to grey."""
        return {"result": ops.greyscale(image)}
