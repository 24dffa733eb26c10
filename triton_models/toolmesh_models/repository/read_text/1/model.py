"""Triton model ``read_text``: lines of printed text (RapidOCR; its wheel ships the PP-OCR weights)."""

from __future__ import annotations

from typing import Any

import numpy as np

from toolmesh_models.backend import FunctionModel
from toolmesh_models.ocr import TextReader


class TritonPythonModel(FunctionModel):
    """read_text(image) -> text [N], score [N], box [N, 4]."""

    def setup(self) -> None:
        """Start one OCR engine on this instance's GPU when ONNX Runtime can use it, else the CPU."""
        self.reader = TextReader(
            threads=int(self.parameters.get("intra_op_threads", "1")),
            cuda_device=self.device_id if self.instance_kind == "GPU" else None,
        )
        self.log(f"RapidOCR on {self.reader.provider}")

    def run(self, image: np.ndarray) -> dict[str, Any]:
        """Every line read with confidence >= 0.5, top to bottom."""
        lines = self.reader.read(image)
        return {
            "text": [line.text for line in lines],
            "score": np.array([line.score for line in lines], np.float32),
            "box": np.array([line.box for line in lines], np.float32).reshape(-1, 4),
        }
