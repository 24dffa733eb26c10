"""Triton model ``resize``: bilinear resize to a given width and height."""

from __future__ import annotations

import numpy as np

from toolmesh_models import ops
from toolmesh_models.backend import FunctionModel


class TritonPythonModel(FunctionModel):
    """resize(image, width, height) -> result [height, width, C] uint8."""

    def run(self, image: np.ndarray, width: int, height: int) -> dict[str, object]:
        """Resize ``image`` to ``width`` × ``height``."""
        return {"result": ops.resize(image, width, height)}
