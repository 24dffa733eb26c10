"""Triton model ``simple_query``: a short answer to a question about an image (BLIP-VQA)."""

from __future__ import annotations

from typing import Any

import numpy as np

from toolmesh_models.backend import FunctionModel
from toolmesh_models.store import ModelStore

WEIGHTS = "blip-vqa"


class TritonPythonModel(FunctionModel):
    """simple_query(image, question) -> result [1] string."""

    def setup(self) -> None:
        """Load BLIP-VQA from the model store; fails to load (naming the pull command) without it."""
        path = ModelStore().require(WEIGHTS, function=self.name)
        from toolmesh_models.vision import QuestionAnswerer, torch_device

        threads = int(self.parameters.get("intra_op_threads", "1"))
        self.vqa = QuestionAnswerer(
            path, device=torch_device(self.instance_kind, self.device_id, threads=threads)
        )
        self.log(f"BLIP-VQA from {path} on {self.vqa.device}")

    def run(self, image: np.ndarray, question: str) -> dict[str, Any]:
        """The model's answer, lower-case free text (often one word)."""
        (answer,) = self.vqa.answer([image], [question])
        return {"result": [answer]}
