"""Triton model ``find``: detections of a named object (OWLv2 from the model store, else CenterNet).

Backend choice, at load: the config parameter ``backend`` (``auto``, ``owlv2`` or
``centernet``); ``auto`` takes OWLv2 when the model store holds ``owlv2`` and the
bundled CenterNet otherwise. OWLv2 runs one forward pass per batch. The bundled
CenterNet graph has a fixed batch of one: placement renders ``find`` without a
dynamic batcher on the CPU (``batching: gpu`` in placement.yaml), so each request
goes to the next free instance instead of queueing behind a batch-mate.

CenterNet's pre-processing decodes a JPEG at a reduced DCT scale when it is at
least twice the network's input, and goes from the decoded file to the float
input with one resize and one conversion; the stages (``decode``, ``resize``,
``infer``, ``post``) are counted in Triton's custom metrics.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from toolmesh_models import coco, imaging
from toolmesh_models.backend import FunctionModel
from toolmesh_models.detector import (
    INPUT_SIZE,
    WEIGHTS_FILE,
    Detector,
    input_from_pil,
    postprocess,
    preprocess,
)
from toolmesh_models.errors import ArgumentError
from toolmesh_models.paths import weights_dir
from toolmesh_models.store import ModelStore

BACKENDS = ("auto", "owlv2", "centernet")


class TritonPythonModel(FunctionModel):
    """find(image, object_name, threshold) -> box [N, 4], score [N], label [N]."""

    def setup(self) -> None:
        """Load the chosen detector on this instance's device (its own GPU, else the CPU)."""
        wanted = self.parameters.get("backend", "auto") or "auto"
        if wanted not in BACKENDS:
            raise RuntimeError(f"find: parameter backend must be one of {BACKENDS}, got {wanted!r}")
        threads = int(self.parameters.get("intra_op_threads", "1"))
        on_gpu = self.instance_kind == "GPU"
        store = ModelStore()
        if wanted == "owlv2" or (wanted == "auto" and store.has("owlv2")):
            from toolmesh_models.vision import OpenVocabularyDetector, torch_device

            device = torch_device(self.instance_kind, self.device_id, threads=threads)
            self.backend = "owlv2"
            self.owl = OpenVocabularyDetector(
                store.require("owlv2", function="find"), device=device
            )
            self.log(f"backend OWLv2 (open vocabulary) from {self.owl.path} on {device}")
            return
        self.backend = "centernet"
        self.detector = Detector(
            weights_dir() / WEIGHTS_FILE,
            intra_op_threads=threads,
            cuda_device=self.device_id if on_gpu else None,
        )
        self.log(f"backend CenterNet (COCO-80) on {self.detector.provider}")
        if on_gpu and self.detector.provider != "CUDAExecutionProvider":
            self.log("GPU instance but ONNX Runtime has no CUDA provider: running on the CPU")

    def decode_image(self, name: str, data: bytes) -> Any:
        """CenterNet: decode straight to RGB at the smallest JPEG scale that covers its input."""
        if self.backend == "centernet":
            reduced = imaging.decode_reduced(data, (INPUT_SIZE, INPUT_SIZE))
            if reduced is not None:
                return reduced
        return super().decode_image(name, data)

    def run(
        self, image: np.ndarray | imaging.Reduced, object_name: str, threshold: float
    ) -> dict[str, object]:
        """Detect the classes ``object_name`` names, above ``threshold`` (CenterNet)."""
        if not 0.0 <= threshold <= 1.0:  # also rejects NaN
            raise ArgumentError(f"threshold must be in [0, 1], got {threshold}")
        classes = coco.resolve(object_name)
        with self.stage("resize"):
            if isinstance(image, imaging.Reduced):
                batch = input_from_pil(image.image)
                width, height = image.size
            else:
                batch = preprocess(image)
                height, width = image.shape[:2]
        with self.stage("infer"):
            raw = self.detector.infer(batch)
        with self.stage("post"):
            found = postprocess(raw, width, height, classes=classes, threshold=threshold)
        return {"box": found.boxes, "score": found.scores, "label": found.labels}

    def run_batch(self, batch: list[dict[str, Any]]) -> list[dict[str, Any] | Exception]:
        """CenterNet: one image at a time; OWLv2: one forward pass for the whole batch."""
        if self.backend == "centernet":
            return super().run_batch(batch)
        results: list[dict[str, Any] | Exception] = [
            ArgumentError(f"threshold must be in [0, 1], got {a['threshold']}")
            if not 0.0 <= a["threshold"] <= 1.0
            else ArgumentError("object_name is empty")
            if not a["object_name"].strip()
            else {}
            for a in batch
        ]
        todo = [i for i, r in enumerate(results) if not isinstance(r, Exception)]
        if todo:
            found = self.owl.detect(
                [batch[i]["image"] for i in todo],
                [" ".join(batch[i]["object_name"].split()) for i in todo],
                [batch[i]["threshold"] for i in todo],
            )
            for i, (boxes, scores, labels) in zip(todo, found, strict=True):
                results[i] = {"box": boxes, "score": scores, "label": labels}
        return results
