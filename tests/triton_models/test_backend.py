"""FunctionModel's request handling, with the committed model.py files and configs.

Triton's ``triton_python_backend_utils`` exists only inside the python backend
stub, so a small stand-in records what the models hand to it. The real server
path is exercised by the end-to-end tests through the gateway.
"""

from __future__ import annotations

import importlib.util
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
import pytest
from google.protobuf import json_format
from PIL import Image

from toolmesh_models import backend
from toolmesh_models.errors import WeightsMissing
from toolmesh_models.paths import REPOSITORY
from toolmesh_models.repository import available_models, read_config

from .test_detector import STREET


class Tensor:
    def __init__(self, name: str, array: np.ndarray) -> None:
        self._name, self._array = name, array

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> np.ndarray:
        return self._array


class TritonError:
    INVALID_ARG = "INVALID_ARG"
    INTERNAL = "INTERNAL"

    def __init__(self, message: str, code: str = "UNKNOWN") -> None:
        self.message, self.code = message, code


@dataclass
class InferenceResponse:
    output_tensors: list[Tensor] = field(default_factory=list)
    error: TritonError | None = None

    def outputs(self) -> dict[str, np.ndarray]:
        return {t.name(): t.as_numpy() for t in self.output_tensors}


class Logger:
    lines: ClassVar[list[tuple[str, str]]] = []

    @classmethod
    def log_info(cls, message: str) -> None:
        cls.lines.append(("info", message))

    @classmethod
    def log_error(cls, message: str) -> None:
        cls.lines.append(("error", message))


NUMPY = {"TYPE_UINT8": np.uint8, "TYPE_UINT16": np.uint16, "TYPE_INT64": np.int64,
         "TYPE_FP32": np.float32, "TYPE_STRING": np.object_, "TYPE_BOOL": np.bool_}  # fmt: skip


@pytest.fixture(autouse=True)
def pb_utils(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    fake = SimpleNamespace(
        Tensor=Tensor,
        TritonError=TritonError,
        InferenceResponse=InferenceResponse,
        Logger=Logger,
        get_input_tensor_by_name=lambda request, name: request.get(name),
        triton_string_to_numpy=NUMPY.__getitem__,
    )
    monkeypatch.setattr(backend, "pb_utils", fake)
    Logger.lines.clear()
    return fake


def load(name: str, **config_changes: Any) -> backend.FunctionModel:
    """Instantiate ``repository/<name>/1/model.py`` the way the python backend does."""
    spec = importlib.util.spec_from_file_location(
        f"model_{name}", REPOSITORY / name / "1" / "model.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = json_format.MessageToDict(
        read_config(REPOSITORY / name / "config.pbtxt"), preserving_proto_field_name=True
    )
    config.update(config_changes)
    model = module.TritonPythonModel()
    model.initialize(
        {
            "model_config": json.dumps(config),
            "model_instance_kind": "CPU",
            "model_instance_device_id": "0",
        }
    )
    return model


def request(**inputs: Any) -> dict[str, Tensor]:
    return {name: Tensor(name, np.asarray(value)) for name, value in inputs.items()}


def text(value: str) -> np.ndarray:
    return np.array([value.encode()], dtype=np.object_)


def png(array: np.ndarray) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return np.frombuffer(buffer.getvalue(), dtype=np.uint8)


RGB = np.random.default_rng(4).integers(0, 256, (6, 9, 3), dtype=np.uint8)


#: Models that load weights from the model store, and the entry each needs.
STORE_MODELS = {"simple_query": "blip-vqa", "caption": "blip-caption", "verify_property": "blip-itm",
                "best_image_match": "clip", "best_text_match": "clip", "compute_depth": "depth"}  # fmt: skip


@pytest.mark.parametrize("name", available_models())
def test_every_model_initializes_from_its_config(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLMESH_MODEL_DIR", str(tmp_path))  # an empty store
    if name in STORE_MODELS:
        with pytest.raises(WeightsMissing, match=f"toolmesh models pull {STORE_MODELS[name]}"):
            load(name)
        return
    load(name)
    assert ("info", f"{name}: instance ready (CPU 0)") in Logger.lines


def test_one_bad_request_in_a_batch_fails_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    model = load("rotate")
    seen: list[int] = []

    def run_batch(batch: list[dict[str, Any]]) -> list[Any]:
        seen.append(len(batch))
        return [{"result": a["image"]} for a in batch]

    monkeypatch.setattr(model, "run_batch", run_batch)
    ok, bad, ok2 = model.execute(
        [
            request(image_array=RGB, angle=[90]),
            request(angle=[90]),
            request(image_array=RGB, angle=[0]),
        ]
    )
    assert seen == [2]  # the two good requests went to run_batch together
    assert ok.error is None and ok2.error is None and bad.error.code == "INVALID_ARG"


def test_image_from_file_or_pixels_one_response_per_request() -> None:
    model = load("greyscale")
    expected = np.asarray(Image.fromarray(RGB).convert("L"))[:, :, np.newaxis]
    responses = model.execute(
        [
            request(image=png(RGB)),
            request(image_array=RGB),
            request(image=png(RGB), image_array=RGB),
            request(),
            request(image=np.frombuffer(b"garbage", np.uint8)),
            request(image_array=RGB[:, :, :2]),
        ]
    )
    assert len(responses) == 6
    for response in responses[:2]:
        assert response.error is None
        result = response.outputs()["result"]
        assert result.dtype == np.uint8 and np.array_equal(result, expected)
    for response in responses[2:4]:
        assert response.error.code == "INVALID_ARG"
        assert "send exactly one of 'image'" in response.error.message
    assert responses[4].error.code == "INVALID_ARG"
    assert "cannot decode the image" in responses[4].error.message
    assert "image_array must have shape" in responses[5].error.message


def test_find_strings_and_scalars() -> None:
    model = load("find")  # dynamically batched: one item per request, batch dimension 1
    jpeg = np.frombuffer((STREET / "frame_000.jpg").read_bytes(), dtype=np.uint8)[np.newaxis]
    threshold = np.array([[0.3]], np.float32)
    ok, unknown = model.execute(
        [
            request(image=jpeg, object_name=text("people")[np.newaxis], threshold=threshold),
            request(image=jpeg, object_name=text("unicorn")[np.newaxis], threshold=threshold),
        ]
    )
    outputs = {name: array[0] for name, array in ok.outputs().items()}
    assert outputs["box"].dtype == np.float32 and outputs["box"].shape[1] == 4
    assert outputs["score"].shape == (len(outputs["box"]),)
    assert outputs["label"].dtype == np.object_
    assert set(outputs["label"].tolist()) == {b"person"}
    assert unknown.error.code == "INVALID_ARG"
    assert "unknown object name 'unicorn'" in unknown.error.message


def test_bad_utf8_is_an_argument_error() -> None:
    model = load("convert_format")
    (response,) = model.execute(
        [request(image_array=RGB, format=np.array([b"\xff"], np.object_), quality=[90])]
    )
    assert response.error.code == "INVALID_ARG" and "UTF-8" in response.error.message


def test_convert_format_outputs() -> None:
    model = load("convert_format")
    (response,) = model.execute([request(image_array=RGB, format=text("png"), quality=[90])])
    outputs = response.outputs()
    assert outputs["media_type"].tolist() == [b"image/png"]
    assert outputs["data"].dtype == np.uint8
    decoded = np.asarray(Image.open(io.BytesIO(outputs["data"].tobytes())))
    assert np.array_equal(decoded, RGB)


def test_internal_error_is_logged_and_isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    model = load("rotate")
    calls = iter([RuntimeError("boom"), None])

    def flaky(image: np.ndarray, angle: int) -> dict[str, Any]:
        failure = next(calls)
        if failure:
            raise failure
        return {"result": image}

    monkeypatch.setattr(model, "run", flaky)
    failed, fine = model.execute(
        [request(image_array=RGB, angle=[90]), request(image_array=RGB, angle=[90])]
    )
    assert failed.error.code == "INTERNAL"
    assert failed.error.message == "rotate: internal error: RuntimeError: boom"
    assert fine.error is None
    errors = [line for level, line in Logger.lines if level == "error"]
    assert len(errors) == 1 and "Traceback" in errors[0] and "boom" in errors[0]


def test_output_shape_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    model = load("greyscale")
    monkeypatch.setattr(model, "run", lambda image: {"result": image})  # 3 channels, not 1
    (response,) = model.execute([request(image_array=RGB)])
    assert response.error.code == "INTERNAL"
    assert "has shape [6, 9, 3], config.pbtxt declares [-1, -1, 1]" in response.error.message


def test_batch_dimension_is_stripped_and_restored() -> None:
    model = load("rotate", max_batch_size=4)
    (response,) = model.execute([request(image_array=RGB[np.newaxis], angle=[[90]])])
    result = response.outputs()["result"]
    assert result.shape == (1, 9, 6, 3)
    assert np.array_equal(result[0], np.rot90(RGB))
    (response,) = model.execute([request(image_array=np.stack([RGB, RGB]), angle=[[90], [90]])])
    assert response.error.code == "INVALID_ARG" and "one item per request" in response.error.message


def test_run_signature_must_match_config() -> None:
    with pytest.raises(RuntimeError, match=r"run\(\) takes \['angle', 'image'\] but config"):
        load("rotate", input=[{"name": "image", "data_type": "TYPE_UINT8", "dims": [-1]}])


def test_both_sides_of_the_tensor_contract_name_pixel_inputs_alike() -> None:
    """The gateway (toolmesh.wire) and the models (backend) each hold the suffix, so that
    Triton's stub processes need not import the client; they must agree."""
    from toolmesh.wire import ARRAY_SUFFIX as GATEWAY_SIDE
    from toolmesh_models.backend import ARRAY_SUFFIX as MODEL_SIDE

    assert GATEWAY_SIDE == MODEL_SIDE == "_array"
