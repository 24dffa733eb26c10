"""Triton model ``color_depth``: map ``bits``-deep samples to 8 bits."""

from __future__ import annotations

import numpy as np

from toolmesh_models import ops
from toolmesh_models.backend import FunctionModel


class TritonPythonModel(FunctionModel):
    """color_depth(image, bits) -> result uint8, same shape."""

    def run(self, image: np.ndarray, bits: int) -> dict[str, object]:
        """Scale ``image``'s ``bits``-deep samples to 0..255."""
        return {"result": ops.color_depth(image, bits)}
