"""Triton model ``best_image_match``: which of several images CLIP matches best with a text.

Dynamically batched: every image and text of the batch goes through CLIP in one
forward pass, and each request reads its own block of the similarity matrix.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from toolmesh_models.backend import FunctionModel
from toolmesh_models.errors import ArgumentError
from toolmesh_models.vision import best_match, load_clip

MAX_IMAGES = 64


class TritonPythonModel(FunctionModel):
    """best_image_match(images, text) -> index [1], scores [K]."""

    image_lists = ("images",)

    def setup(self) -> None:
        """Load CLIP from the model store; fails to load (naming the pull command) without it."""
        self.clip = load_clip(self)

    def run(self, images: list[np.ndarray], text: str) -> dict[str, Any]:
        (result,) = self.run_batch([{"images": images, "text": text}])
        if isinstance(result, Exception):
            raise result
        return result

    def run_batch(self, batch: list[dict[str, Any]]) -> list[dict[str, Any] | Exception]:
        results: list[dict[str, Any] | Exception] = []
        todo = []
        for arguments in batch:
            count = len(arguments["images"])
            if not 1 <= count <= MAX_IMAGES:
                results.append(ArgumentError(f"images: send 1 to {MAX_IMAGES} images, got {count}"))
            else:
                results.append({})
                todo.append(len(results) - 1)
        if not todo:
            return results
        images = [image for i in todo for image in batch[i]["images"]]
        logits = self.clip.logits(images, [batch[i]["text"] for i in todo])
        start = 0
        for column, i in enumerate(todo):
            count = len(batch[i]["images"])
            results[i] = best_match(logits[start : start + count, column])
            start += count
        return results
