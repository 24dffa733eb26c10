"""Triton model ``compute_depth``: relative depth per pixel and median depth per box (Depth Anything).

Dynamically batched: the images of a batch that preprocess to the same size go
through the network in one forward pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from toolmesh_models.backend import FunctionModel
from toolmesh_models.color import region
from toolmesh_models.errors import ArgumentError
from toolmesh_models.store import ModelStore

WEIGHTS = "depth"
SCALE = 65535


class TritonPythonModel(FunctionModel):
    """compute_depth(image, boxes) -> depth [H, W, 1] uint16, median [1], box_medians [N]."""

    def setup(self) -> None:
        """Load the depth model from the model store; fails to load (naming the pull command) without it."""
        path = ModelStore().require(WEIGHTS, function=self.name)
        from toolmesh_models.vision import DepthEstimator, torch_device

        threads = int(self.parameters.get("intra_op_threads", "1"))
        self.depth = DepthEstimator(
            path, device=torch_device(self.instance_kind, self.device_id, threads=threads)
        )
        self.log(f"depth model from {path} on {self.depth.device}")

    def run(self, image: np.ndarray, boxes: np.ndarray) -> dict[str, Any]:
        (result,) = self.run_batch([{"image": image, "boxes": boxes}])
        if isinstance(result, Exception):
            raise result
        return result

    def run_batch(self, batch: list[dict[str, Any]]) -> list[dict[str, Any] | Exception]:
        results: list[dict[str, Any] | Exception] = []
        crops: list[list[tuple[slice, slice]] | None] = []
        for arguments in batch:
            try:
                crops.append(_regions(arguments["image"], arguments["boxes"]))
                results.append({})
            except ArgumentError as exc:
                crops.append(None)
                results.append(exc)
        todo = [i for i, r in enumerate(results) if not isinstance(r, Exception)]
        if not todo:
            return results
        maps = self.depth.relative_depth([batch[i]["image"] for i in todo])
        for i, depth in zip(todo, maps, strict=True):
            regions = crops[i] or []
            results[i] = {
                "depth": np.rint(depth * SCALE).astype(np.uint16)[:, :, np.newaxis],
                "median": np.array([np.median(depth)], np.float32),
                "box_medians": np.array([np.median(depth[r]) for r in regions], np.float32),
            }
        return results


def _regions(image: np.ndarray, boxes: np.ndarray) -> list[tuple[slice, slice]]:
    """The row/column slices of each box (ArgumentError for one that holds no pixel)."""
    height, width = image.shape[:2]
    return [
        region(height, width, box.tolist()) for box in np.asarray(boxes, np.float32).reshape(-1, 4)
    ]
