"""Printed-text reading with RapidOCR (PP-OCR detection + recognition, ONNX Runtime).

The ``rapidocr`` wheel ships its ONNX weights, so ``read_text`` runs on real
weights with no model store. Pure code (no Triton import), tested directly on
text the tests render.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .imaging import to_rgb8

__all__ = ["TextLine", "TextReader"]


class TextLine(NamedTuple):
    """One line of text found in an image."""

    text: str
    score: float
    """Recognition confidence in [0, 1]."""
    box: tuple[float, float, float, float]
    """x1, y1, x2, y2 in pixels: the axis-aligned box around the (possibly tilted) line."""


class TextReader:
    """One RapidOCR engine; one per Triton instance (an engine is not shared between threads).

    Args:
        threads: ONNX Runtime intra-op threads (1 suits one instance per core).
        cuda_device: Run on this GPU when ONNX Runtime has the CUDA provider;
            None for the CPU.
        min_score: Lines recognised with a lower confidence are dropped.
    """

    def __init__(
        self, *, threads: int = 1, cuda_device: int | None = None, min_score: float = 0.5
    ) -> None:
        import onnxruntime as ort
        from rapidocr import RapidOCR

        on_gpu = (
            cuda_device is not None and "CUDAExecutionProvider" in ort.get_available_providers()
        )
        params: dict[str, Any] = {
            "Global.log_level": "error",
            "Global.text_score": min_score,
            "EngineConfig.onnxruntime.intra_op_num_threads": threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            "EngineConfig.onnxruntime.use_cuda": on_gpu,
        }
        if on_gpu:
            params["EngineConfig.onnxruntime.cuda_ep_cfg.device_id"] = cuda_device
        self.provider = "CUDAExecutionProvider" if on_gpu else "CPUExecutionProvider"
        self._engine = RapidOCR(params=params)

    def read(self, image: np.ndarray) -> list[TextLine]:
        """Lines of text in reading order (top to bottom, then left to right)."""
        output = self._engine(to_rgb8(image))
        if output.txts is None or output.boxes is None:
            return []
        lines = []
        for text, score, quad in zip(output.txts, output.scores, output.boxes, strict=True):
            points = np.asarray(quad, dtype=np.float32).reshape(-1, 2)
            height, width = image.shape[:2]
            x1, y1 = np.clip(points.min(axis=0), 0, [width, height])
            x2, y2 = np.clip(points.max(axis=0), 0, [width, height])
            lines.append(
                TextLine(str(text), float(score), (float(x1), float(y1), float(x2), float(y2)))
            )
        lines.sort(key=lambda line: (round(line.box[1] / 10), line.box[0]))
        return lines
