"""The COCO-80 object detector: CenterNet (MobileNetV3) run with ONNX Runtime.

Pure code (no Triton import) so it is tested on real images directly. The model
takes a 512 × 512 RGB image of raw 0–255 floats (NHWC) and returns 100
candidate detections as ``x1, y1, x2, y2, score, class`` in 512-pixel
coordinates (see ``weights/ATTRIBUTION.md``); this module maps them back to the
caller's image.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import NamedTuple

import numpy as np
import onnxruntime as ort
from PIL import Image

from .coco import LABELS
from .errors import ArgumentError
from .imaging import to_rgb8

__all__ = [
    "INPUT_SIZE",
    "WEIGHTS_FILE",
    "Detections",
    "Detector",
    "execution_providers",
    "input_from_pil",
    "postprocess",
    "preprocess",
]

WEIGHTS_FILE = "centernet.onnx"
"""File name of the detector's weights inside the weights folder."""

INPUT_NAME = "tower_0/images:0"
OUTPUT_NAME = "tower_0/detections"
INPUT_SIZE = 512


class Detections(NamedTuple):
    """Detections of one image, sorted by score (highest first)."""

    boxes: np.ndarray
    """float32 [N, 4]: x1, y1, x2, y2 in pixels of the original image."""
    scores: np.ndarray
    """float32 [N]: confidence in [0, 1]."""
    classes: np.ndarray
    """int64 [N]: indices into :data:`toolmesh_models.coco.LABELS`."""

    @property
    def labels(self) -> list[str]:
        """The COCO label of each detection."""
        return [LABELS[int(c)] for c in self.classes]


def input_from_pil(image: Image.Image) -> np.ndarray:
    """An RGB Pillow image as the model's input: float32 [1, 512, 512, 3], 0–255.

    Bilinear resizing to a square (no letterbox) is what the model was exported
    with; boxes are scaled back per axis. One resize, one conversion to float:
    the only copies between the decoded file and ONNX Runtime.
    """
    resized = image.resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float32)[np.newaxis]


def preprocess(image: np.ndarray) -> np.ndarray:
    """Turn an H × W × C image (any contract image) into the model's input."""
    return input_from_pil(Image.fromarray(to_rgb8(image)))


def postprocess(
    raw: np.ndarray, width: int, height: int, *, classes: Collection[int] | None, threshold: float
) -> Detections:
    """Map the model's [100, 6] output to detections in an image of ``width`` × ``height``.

    Boxes are scaled from 512-pixel coordinates, clipped to the image, and those
    that clipping leaves empty are dropped, so every box has x2 > x1 and y2 > y1.

    Args:
        raw: Rows of x1, y1, x2, y2, score, class index (512-pixel coordinates).
        width: Width of the original image.
        height: Height of the original image.
        classes: Class indices to keep; None keeps every class.
        threshold: Minimum score kept.
    """
    raw = np.asarray(raw, dtype=np.float32).reshape(-1, 6)
    class_index = np.rint(raw[:, 5]).astype(np.int64)
    scale = np.array([width, height, width, height], dtype=np.float32) / INPUT_SIZE
    boxes = raw[:, :4] * scale
    np.clip(boxes, 0, np.array([width, height, width, height], dtype=np.float32), out=boxes)
    keep = (raw[:, 4] >= threshold) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    if classes is not None:
        keep &= np.isin(class_index, np.fromiter(classes, dtype=np.int64))
    order = np.argsort(-raw[keep, 4], kind="stable")
    return Detections(
        boxes=np.ascontiguousarray(boxes[keep][order]),
        scores=np.ascontiguousarray(raw[keep, 4][order]),
        classes=class_index[keep][order],
    )


def execution_providers(
    cuda_device: int | None, available: Collection[str]
) -> list[str | tuple[str, dict[str, int]]]:
    """ONNX Runtime providers for an instance: its GPU first when CUDA is there, else the CPU.

    ``onnxruntime-gpu`` (the Triton image's) has the CUDA provider; the CPU wheel
    does not, and a GPU instance then runs the detector on the CPU (the model logs it).
    """
    providers: list[str | tuple[str, dict[str, int]]] = ["CPUExecutionProvider"]
    if cuda_device is not None and "CUDAExecutionProvider" in available:
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": cuda_device}))
    return providers


class Detector:
    """CenterNet on ONNX Runtime; one instance per Triton model instance.

    A session is not shared between threads here: Triton calls one instance's
    ``execute`` at a time, and each instance owns its own detector.
    """

    def __init__(
        self, weights: Path | str, *, intra_op_threads: int = 1, cuda_device: int | None = None
    ) -> None:
        """Load the model.

        Args:
            weights: Path of ``centernet.onnx``.
            intra_op_threads: Threads ONNX Runtime may use inside one call. The
                default 1 suits a CPU running one instance per core; more only
                helps when cores are idle.
            cuda_device: Run on this CUDA device when ONNX Runtime has the CUDA
                execution provider; otherwise (or when None) run on the CPU.
                Check :attr:`provider` for what was chosen.

        Raises:
            FileNotFoundError: ``weights`` does not exist.
        """
        weights = Path(weights)
        if not weights.is_file():
            raise FileNotFoundError(
                f"detector weights not found at {weights} (set TOOLMESH_WEIGHTS_DIR to the "
                "folder holding centernet.onnx)"
            )
        if intra_op_threads < 1:
            raise ValueError(f"intra_op_threads must be >= 1, got {intra_op_threads}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        providers = execution_providers(cuda_device, ort.get_available_providers())
        self._session = ort.InferenceSession(str(weights), options, providers=providers)

    @property
    def provider(self) -> str:
        """The execution provider in use, e.g. ``CPUExecutionProvider``."""
        return str(self._session.get_providers()[0])

    def detect(
        self, image: np.ndarray, *, classes: Collection[int] | None = None, threshold: float = 0.3
    ) -> Detections:
        """Detect objects in one image.

        Args:
            image: H × W × C array (1, 3 or 4 channels, uint8 or uint16).
            classes: Class indices to keep (see :func:`toolmesh_models.coco.resolve`);
                None keeps all.
            threshold: Minimum score, in [0, 1].

        Returns:
            The detections, highest score first, boxes in the image's pixels.

        Raises:
            ArgumentError: ``threshold`` is outside [0, 1] or ``image`` is not an image.
        """
        if not 0.0 <= threshold <= 1.0:  # also rejects NaN
            raise ArgumentError(f"threshold must be in [0, 1], got {threshold}")
        height, width = image.shape[:2]
        raw = self.infer(preprocess(image))
        return postprocess(raw, width, height, classes=classes, threshold=threshold)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """The raw [100, 6] detections of one preprocessed image (see :func:`preprocess`)."""
        (raw,) = self._session.run([OUTPUT_NAME], {INPUT_NAME: batch})
        return np.asarray(raw[0])
