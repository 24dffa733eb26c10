"""Triton model ``dominant_color``: the most common colour in a box, with a basic name (NumPy)."""

from __future__ import annotations

from typing import Any

import numpy as np

from toolmesh_models.backend import FunctionModel
from toolmesh_models.color import dominant_color


class TritonPythonModel(FunctionModel):
    """dominant_color(image, box) -> rgb [3], name [1], fraction [1]."""

    def run(self, image: np.ndarray, box: np.ndarray) -> dict[str, Any]:
        """The winning colour of ``box`` (the whole image when ``box`` is empty)."""
        found = dominant_color(image, np.asarray(box, dtype=np.float64).reshape(-1).tolist())
        return {
            "rgb": np.array(found.rgb, np.int64),
            "name": [found.name],
            "fraction": np.array([found.fraction], np.float32),
        }
