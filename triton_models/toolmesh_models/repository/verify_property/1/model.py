"""Triton model ``verify_property``: does the named object have a property? (find + BLIP-ITM).

The object's crops come from ``find`` inside Triton (BLS); BLIP image–text
matching scores "a <property> <object>" on each of the best crops, in one
forward pass; the best crop decides.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from toolmesh_models import bls
from toolmesh_models.backend import FunctionModel
from toolmesh_models.color import crop
from toolmesh_models.errors import ArgumentError
from toolmesh_models.store import ModelStore

WEIGHTS = "blip-itm"
MAX_CROPS = 8
FIND_THRESHOLD = 0.3
HOLDS_AT = 0.5


class TritonPythonModel(FunctionModel):
    """verify_property(image, object_name, property) -> holds [1], probability [1], box [4]."""

    def setup(self) -> None:
        """Load BLIP-ITM from the model store; fails to load (naming the pull command) without it."""
        path = ModelStore().require(WEIGHTS, function=self.name)
        from toolmesh_models.vision import ImageTextMatcher, torch_device

        threads = int(self.parameters.get("intra_op_threads", "1"))
        self.itm = ImageTextMatcher(
            path, device=torch_device(self.instance_kind, self.device_id, threads=threads)
        )
        self.log(f"BLIP-ITM from {path} on {self.itm.device}")

    def run(self, image: np.ndarray, object_name: str, property: str) -> dict[str, Any]:
        """Score the property on the best crops of ``object_name`` (the whole image if none)."""
        if not property.strip() or not object_name.strip():
            raise ArgumentError("object_name and property must not be empty")
        height, width = image.shape[:2]
        try:
            boxes = bls.find(image, object_name, FIND_THRESHOLD).boxes[:MAX_CROPS]
        except ArgumentError:
            boxes = np.zeros(
                (0, 4), np.float32
            )  # a name the detector cannot name: judge the whole image
        if len(boxes) == 0:
            boxes = np.array([[0, 0, width, height]], dtype=np.float32)
        crops = [crop(image, box) for box in boxes]
        text = f"a {' '.join(property.split())} {' '.join(object_name.split())}"
        probabilities = self.itm.probabilities(crops, [text] * len(crops))
        best = int(np.argmax(probabilities))
        return {
            "holds": np.array([probabilities[best] >= HOLDS_AT]),
            "probability": np.array([probabilities[best]], np.float32),
            "box": boxes[best].astype(np.float32),
        }
