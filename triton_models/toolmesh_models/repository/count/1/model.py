"""Triton model ``count``: how many detections ``find`` returns, asked of ``find`` inside Triton (BLS)."""

from __future__ import annotations

import numpy as np

from toolmesh_models import bls
from toolmesh_models.backend import FunctionModel


class TritonPythonModel(FunctionModel):
    """count(image, object_name, threshold) -> result [1] int64."""

    def run(self, image: np.ndarray, object_name: str, threshold: float) -> dict[str, object]:
        """The number of ``find`` detections above ``threshold``."""
        found = bls.find(image, object_name, threshold)
        return {"result": np.array([len(found.boxes)], dtype=np.int64)}
