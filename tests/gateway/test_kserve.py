"""The gateway as a KServe v2 endpoint: tritonclient and perf_analyzer work through it."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.grpc import service_pb2
from tritonclient.utils import InferenceServerException

from toolmesh_local.mesh import LocalMesh
from toolmesh_local.perf_analyzer import image_input_data, run_perf_analyzer


@pytest.fixture(scope="module")
def direct(mesh: LocalMesh) -> triton.InferenceServerClient:
    assert mesh.triton is not None
    return triton.InferenceServerClient(mesh.triton.grpc_url)


@pytest.fixture(scope="module")
def via_gateway(address: str) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(address)


def find_inputs(jpeg: bytes) -> list[triton.InferInput]:
    """``find`` batches dynamically (max_batch_size > 0): every tensor has a batch dimension of 1."""
    image = triton.InferInput("image", [1, len(jpeg)], "UINT8")
    image.set_data_from_numpy(np.frombuffer(jpeg, dtype=np.uint8)[np.newaxis])
    name = triton.InferInput("object_name", [1, 1], "BYTES")
    name.set_data_from_numpy(np.array([[b"person"]], dtype=object))
    threshold = triton.InferInput("threshold", [1, 1], "FP32")
    threshold.set_data_from_numpy(np.array([[0.3]], dtype=np.float32))
    return [image, name, threshold]


def test_server_and_model_metadata(via_gateway, direct) -> None:
    assert via_gateway.is_server_live() and via_gateway.is_server_ready()
    assert via_gateway.is_model_ready("find")
    assert not via_gateway.is_model_ready("no_such_model")
    metadata = via_gateway.get_server_metadata()
    assert metadata.name == "toolmesh-gateway" and "statistics" in metadata.extensions
    assert via_gateway.get_model_metadata("find") == direct.get_model_metadata("find")
    assert via_gateway.get_model_config("find") == direct.get_model_config("find")
    names = {m.name for m in via_gateway.get_model_repository_index().models}
    assert {"find", "greyscale"} <= names


def test_model_infer_through_the_gateway_equals_direct(via_gateway, direct, street_jpeg) -> None:
    through = via_gateway.infer("find", find_inputs(street_jpeg))
    straight = direct.infer("find", find_inputs(street_jpeg))
    for output in ("box", "score", "label"):
        np.testing.assert_array_equal(through.as_numpy(output), straight.as_numpy(output))
    assert len(through.as_numpy("label")[0]) >= 3

    pixels = np.random.default_rng(3).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    array = triton.InferInput("image_array", list(pixels.shape), "UINT8")
    array.set_data_from_numpy(pixels)
    grey_through = via_gateway.infer("greyscale", [array]).as_numpy("result")
    grey_direct = direct.infer("greyscale", [array]).as_numpy("result")
    np.testing.assert_array_equal(grey_through, grey_direct)


def test_model_errors_pass_through_with_their_status(via_gateway) -> None:
    with pytest.raises(InferenceServerException) as info:
        via_gateway.infer("find", find_inputs(b"not an image at all"))
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "decode" in info.value.message()


def test_unserved_model_is_unavailable_naming_it(via_gateway) -> None:
    data = triton.InferInput("x", [1], "FP32")
    data.set_data_from_numpy(np.zeros(1, dtype=np.float32))
    with pytest.raises(InferenceServerException) as info:
        via_gateway.infer("no_such_model", [data])
    assert info.value.status() == "StatusCode.UNAVAILABLE"
    assert "no_such_model" in info.value.message()


def test_malformed_infer_request_is_invalid_argument(address: str) -> None:
    with grpc.insecure_channel(address) as channel:
        raw = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        with pytest.raises(grpc.RpcError) as info:
            raw(b"\xff\xff\xff\xff garbage", timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_statistics_count_inferences_made_through_the_gateway(via_gateway, street_jpeg) -> None:
    def count() -> int:
        stats = via_gateway.get_inference_statistics("greyscale", as_json=False)
        return sum(s.inference_count for s in stats.model_stats)

    before = count()
    image = triton.InferInput("image", [len(street_jpeg)], "UINT8")
    image.set_data_from_numpy(np.frombuffer(street_jpeg, dtype=np.uint8))
    for _ in range(3):
        via_gateway.infer("greyscale", [image])
    assert count() == before + 3
    assert isinstance(
        via_gateway.get_inference_statistics(as_json=False), service_pb2.ModelStatisticsResponse
    )


def test_perf_analyzer_through_the_gateway(
    address: str, street_jpeg: bytes, tmp_path: Path
) -> None:
    data = image_input_data(
        tmp_path / "find.json", street_jpeg, object_name="person", threshold=0.3
    )
    result = run_perf_analyzer(address, "find", input_data=data, concurrency=2, measurement_ms=1500)
    assert result.throughput > 0
    assert "Request concurrency: 2" in result.output
