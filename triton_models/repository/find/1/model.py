"""Triton model ``find``: COCO-80 detections of a named object (CenterNet, ONNX Runtime)."""

from __future__ import annotations

import numpy as np

from toolmesh_models import coco
from toolmesh_models.backend import FunctionModel
from toolmesh_models.detector import WEIGHTS_FILE, Detector
from toolmesh_models.paths import weights_dir


class TritonPythonModel(FunctionModel):
    """find(image, object_name, threshold) -> box [N, 4], score [N], label [N]."""

    def setup(self) -> None:
        """Load the detector on this instance's GPU when ONNX Runtime can use it, else the CPU."""
        on_gpu = self.instance_kind == "GPU"
        self.detector = Detector(
            weights_dir() / WEIGHTS_FILE,
            intra_op_threads=int(self.parameters.get("intra_op_threads", "1")),
            cuda_device=self.device_id if on_gpu else None,
        )
        self.log(f"detector on {self.detector.provider}")
        if on_gpu and self.detector.provider != "CUDAExecutionProvider":
            self.log("GPU instance but ONNX Runtime has no CUDA provider: running on the CPU")

    def run(self, image: np.ndarray, object_name: str, threshold: float) -> dict[str, object]:
        """Detect the classes ``object_name`` names, above ``threshold``."""
        found = self.detector.detect(image, classes=coco.resolve(object_name), threshold=threshold)
        return {"box": found.boxes, "score": found.scores, "label": found.labels}
