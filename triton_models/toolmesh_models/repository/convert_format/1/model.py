"""Triton model ``convert_format``: encode an image as PNG, JPEG, WebP, BMP or TIFF."""

from __future__ import annotations

import numpy as np

from toolmesh_models import ops
from toolmesh_models.backend import FunctionModel


class TritonPythonModel(FunctionModel):
    """convert_format(image, format, quality) -> data [N] uint8 (the file), media_type [1]."""

    def run(self, image: np.ndarray, format: str, quality: int) -> dict[str, object]:
        """Encode ``image`` as ``format``."""
        data, media_type = ops.convert_format(image, format, quality)
        return {"data": np.frombuffer(data, dtype=np.uint8), "media_type": [media_type]}
