"""Triton model ``exists``: whether ``find`` returns anything, asked of ``find`` inside Triton (BLS)."""

from __future__ import annotations

import numpy as np

from toolmesh_models import bls
from toolmesh_models.backend import FunctionModel


class TritonPythonModel(FunctionModel):
    """exists(image, object_name, threshold) -> result [1] bool."""

    def run(self, image: np.ndarray, object_name: str, threshold: float) -> dict[str, object]:
        """True when ``find`` has at least one detection above ``threshold``."""
        found = bls.find(image, object_name, threshold)
        return {"result": np.array([len(found.boxes) > 0])}
