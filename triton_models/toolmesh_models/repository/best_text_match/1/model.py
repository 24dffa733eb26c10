"""Triton model ``best_text_match``: which of several texts CLIP matches best with an image.

Dynamically batched: every image and text of the batch goes through CLIP in one
forward pass, and each request reads its own block of the similarity matrix.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from toolmesh_models.backend import FunctionModel
from toolmesh_models.errors import ArgumentError
from toolmesh_models.vision import best_match, load_clip

MAX_TEXTS = 64


class TritonPythonModel(FunctionModel):
    """best_text_match(image, texts) -> index [1], scores [K]."""

    def setup(self) -> None:
        """Load CLIP from the model store; fails to load (naming the pull command) without it."""
        self.clip = load_clip(self)

    def run(self, image: np.ndarray, texts: list[str]) -> dict[str, Any]:
        (result,) = self.run_batch([{"image": image, "texts": texts}])
        if isinstance(result, Exception):
            raise result
        return result

    def run_batch(self, batch: list[dict[str, Any]]) -> list[dict[str, Any] | Exception]:
        results: list[dict[str, Any] | Exception] = []
        todo = []
        for arguments in batch:
            texts = arguments["texts"]
            if not 1 <= len(texts) <= MAX_TEXTS or not all(t.strip() for t in texts):
                results.append(
                    ArgumentError(f"texts: send 1 to {MAX_TEXTS} non-empty texts, got {len(texts)}")
                )
            else:
                results.append({})
                todo.append(len(results) - 1)
        if not todo:
            return results
        texts = [text for i in todo for text in batch[i]["texts"]]
        logits = self.clip.logits([batch[i]["image"] for i in todo], texts)
        start = 0
        for row, i in enumerate(todo):
            count = len(batch[i]["texts"])
            results[i] = best_match(logits[row, start : start + count])
            start += count
        return results
