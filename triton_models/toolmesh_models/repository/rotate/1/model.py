"""Triton model ``rotate``: exact rotation by a multiple of 90 degrees."""

from __future__ import annotations

import numpy as np

from toolmesh_models import ops
from toolmesh_models.backend import FunctionModel


class TritonPythonModel(FunctionModel):
    """rotate(image, angle) -> result uint8, rotated counter-clockwise."""

    def run(self, image: np.ndarray, angle: int) -> dict[str, object]:
        """Rotate ``image`` by ``angle`` degrees counter-clockwise."""
        return {"result": ops.rotate(image, angle)}
