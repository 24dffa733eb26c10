"""The CenterNet detector on real street frames (ONNX Runtime, no Triton)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from toolmesh.data import STREET_FRAMES
from toolmesh_models.coco import LABELS, resolve
from toolmesh_models.detector import (
    INPUT_SIZE,
    WEIGHTS_FILE,
    Detector,
    execution_providers,
    input_from_pil,
    postprocess,
    preprocess,
)
from toolmesh_models.errors import ArgumentError
from toolmesh_models.imaging import decode, decode_reduced
from toolmesh_models.paths import weights_dir

STREET = STREET_FRAMES


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector(weights_dir() / WEIGHTS_FILE)


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    return decode((STREET / "frame_000.jpg").read_bytes())


def test_people_on_a_street_frame(detector: Detector, frame: np.ndarray) -> None:
    assert frame.shape == (576, 768, 3)
    found = detector.detect(frame, classes=resolve("people"), threshold=0.3)
    assert len(found.scores) >= 3
    assert found.labels == ["person"] * len(found.scores)
    boxes = found.boxes
    assert boxes.dtype == np.float32 and boxes.shape == (len(found.scores), 4)
    # x1, y1, x2, y2 inside the 768 × 576 frame, non-empty.
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
    assert (boxes[:, 2] <= 768).all() and (boxes[:, 3] <= 576).all()
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    # Standing people: taller than wide (a y1, x1, y2, x2 mix-up would invert this).
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert heights.mean() > 1.5 * widths.mean()
    assert (np.diff(found.scores) <= 0).all()
    assert ((found.scores >= 0.3) & (found.scores <= 1)).all()


def test_people_across_frames(detector: Detector) -> None:
    counts = [
        len(detector.detect(decode(p.read_bytes()), classes={0}, threshold=0.3).scores)
        for p in sorted(STREET.glob("*.jpg"))[::6]
    ]
    assert min(counts) >= 2 and max(counts) >= 4


def test_vehicles_and_class_filter(detector: Detector, frame: np.ndarray) -> None:
    everything = detector.detect(frame, threshold=0.3)
    vehicles = detector.detect(frame, classes=resolve("vehicle"), threshold=0.3)
    assert set(vehicles.labels) <= {"bicycle", "car", "motorcycle", "bus", "truck"}
    assert vehicles.labels  # the parked van / cars at the top right
    assert len(everything.scores) > len(vehicles.scores)
    assert set(LABELS[int(c)] for c in everything.classes) >= {"person"}


def test_grey_and_rgba_inputs(detector: Detector, frame: np.ndarray) -> None:
    grey = frame.mean(axis=2, keepdims=True).astype(np.uint8)
    rgba = np.concatenate([frame, np.full((*frame.shape[:2], 1), 255, np.uint8)], axis=2)
    assert len(detector.detect(grey, classes={0}).scores) >= 2
    rgb_people = detector.detect(frame, classes={0})
    rgba_people = detector.detect(rgba, classes={0})
    assert np.array_equal(rgb_people.boxes, rgba_people.boxes)


@pytest.mark.parametrize("threshold", [-0.1, 1.5, float("nan")])
def test_threshold_bounds(detector: Detector, frame: np.ndarray, threshold: float) -> None:
    with pytest.raises(ArgumentError, match="threshold"):
        detector.detect(frame, threshold=threshold)


def test_postprocess_scales_clips_and_sorts() -> None:
    raw = np.array(
        [
            [256, 0, 512, 256, 0.5, 0],  # right-top quarter
            [-10, 100, 600, 200, 0.9, 2],  # sticks out: clipped to the image
            [100, 100, 100, 300, 0.8, 0],  # zero width: dropped
            [0, 0, 10, 10, 0.1, 0],  # below threshold
            [600, 0, 700, 10, 0.7, 0],  # entirely outside: empty after clipping
        ],
        dtype=np.float32,
    )
    found = postprocess(raw, 1024, 256, classes=None, threshold=0.3)
    assert found.scores.tolist() == pytest.approx([0.9, 0.5])
    assert found.boxes.tolist() == [[0, 50, 1024, 100], [512, 0, 1024, 128]]
    assert found.classes.tolist() == [2, 0]
    assert postprocess(raw, 1024, 256, classes={0}, threshold=0.3).classes.tolist() == [0]


def test_missing_weights(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="TOOLMESH_WEIGHTS_DIR"):
        Detector(tmp_path / WEIGHTS_FILE)


def test_weights_dir_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TOOLMESH_WEIGHTS_DIR", str(tmp_path))
    assert weights_dir() == tmp_path
    monkeypatch.delenv("TOOLMESH_WEIGHTS_DIR")
    assert (weights_dir() / WEIGHTS_FILE).is_file()


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = np.maximum(a[:2], b[:2])
    x2, y2 = np.minimum(a[2:], b[2:])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / area)


def test_the_reduced_path_feeds_the_network_what_the_array_path_does() -> None:
    data = (STREET / "frame_000.jpg").read_bytes()
    reduced = decode_reduced(data, (INPUT_SIZE, INPUT_SIZE))
    assert reduced is not None
    assert np.array_equal(input_from_pil(reduced.image), preprocess(decode(data)))


def test_a_large_frame_decoded_at_half_scale_gives_the_same_people(detector: Detector) -> None:
    large = io.BytesIO()
    Image.open(STREET / "frame_000.jpg").resize((1536, 1152)).save(large, format="JPEG", quality=92)
    data = large.getvalue()
    reduced = decode_reduced(data, (INPUT_SIZE, INPUT_SIZE))
    assert reduced is not None and reduced.image.size == (768, 576)
    people = resolve("person")
    fast = postprocess(detector.infer(input_from_pil(reduced.image)), *reduced.size,
                       classes=people, threshold=0.4)  # fmt: skip
    full = detector.detect(decode(data), classes=people, threshold=0.4)
    assert len(full.boxes) >= 3
    assert abs(len(fast.boxes) - len(full.boxes)) <= 1
    # every confident person of the full decode is found again, in the same place
    for box in full.boxes[: len(full.boxes) - 1]:
        assert max(_iou(box, other) for other in fast.boxes) > 0.7


def test_a_gpu_instance_puts_the_detector_on_its_own_gpu_when_cuda_is_there() -> None:
    with_cuda = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert execution_providers(1, with_cuda) == [
        ("CUDAExecutionProvider", {"device_id": 1}),
        "CPUExecutionProvider",
    ]
    assert execution_providers(None, with_cuda) == ["CPUExecutionProvider"]
    assert execution_providers(0, ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]


def test_without_cuda_a_gpu_instance_runs_the_detector_on_the_cpu() -> None:
    # this machine's ONNX Runtime is the CPU wheel: the fallback that the model logs
    assert Detector(weights_dir() / WEIGHTS_FILE, cuda_device=0).provider == "CPUExecutionProvider"
