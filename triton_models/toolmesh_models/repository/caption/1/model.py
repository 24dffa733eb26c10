"""Triton model ``caption``: one sentence describing an image (BLIP captioning)."""

from __future__ import annotations

from typing import Any

import numpy as np

from toolmesh_models.backend import FunctionModel
from toolmesh_models.store import ModelStore

WEIGHTS = "blip-caption"


class TritonPythonModel(FunctionModel):
    """caption(image) -> result [1] string."""

    def setup(self) -> None:
        """Load BLIP captioning from the model store; fails to load (naming the pull command) without it."""
        path = ModelStore().require(WEIGHTS, function=self.name)
        from toolmesh_models.vision import Captioner, torch_device

        threads = int(self.parameters.get("intra_op_threads", "1"))
        self.captioner = Captioner(
            path, device=torch_device(self.instance_kind, self.device_id, threads=threads)
        )
        self.log(f"BLIP captioning from {path} on {self.captioner.device}")

    def run(self, image: np.ndarray) -> dict[str, Any]:
        """The caption, lower-case, without a final period."""
        (text,) = self.captioner.caption([image])
        return {"result": [text]}
