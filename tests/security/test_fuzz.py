"""Fuzzing the gateway: no input may produce UNKNOWN or INTERNAL, or hurt later calls.

Two campaigns against the session's gateway process: hypothesis-built
``Call`` requests (valid and invalid functions, argument names, every value
kind, tensors with any dtype/shape/data), and raw bytes — random, truncated
and oversized — sent to every method the gateway serves, found through its
own reflection service. After each, health is SERVING and a real call returns
the right pixels.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import numpy as np
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.security.conftest import assert_greyscale_of
from toolmesh import SyncClient
from toolmesh.v1 import functions_pb2, functions_pb2_grpc, values_pb2
from toolmesh_gateway.config import DEFAULT_MAX_MESSAGE_BYTES

#: What a well-behaved gateway may answer to arbitrary input. UNKNOWN (an escaped
#: exception) and INTERNAL (a gateway bug, by the gateway's own convention) are not here.
ALLOWED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    # Functions whose models the session mesh leaves unloaded (its model store is empty).
    grpc.StatusCode.UNAVAILABLE,
}
#: The KServe RPCs the gateway proxies; the rest of that service (shared memory,
#: repository control, trace/log settings, streaming) is node-local: UNIMPLEMENTED.
PROXIED_KSERVE = {
    "ModelInfer",
    "ServerLive",
    "ServerReady",
    "ServerMetadata",
    "ModelReady",
    "ModelMetadata",
    "ModelConfig",
    "ModelStatistics",
    "RepositoryIndex",
}
FUZZ_SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
#: Examples per campaign are scaled by this (``TOOLMESH_FUZZ_SCALE=20`` for a long local run).
SCALE = float(os.environ.get("TOOLMESH_FUZZ_SCALE", "1"))

FUNCTIONS = ["find", "greyscale", "resize", "rotate", "color_depth", "convert_format"]
PARAMETERS = ["image", "object_name", "width", "height", "angle", "format", "bits", "x"]
DTYPES = ["uint8", "uint16", "float32", "int64", "bool", "float64", "complex128", "bogus", ""]


def tensors() -> st.SearchStrategy[values_pb2.Tensor]:
    shapes = st.lists(st.integers(-2, 40), min_size=0, max_size=4)
    return st.builds(
        lambda dtype, shape, data: values_pb2.Tensor(dtype=dtype, shape=shape, data=data),
        st.sampled_from(DTYPES),
        shapes,
        st.binary(max_size=4096),
    )


def consistent_images() -> st.SearchStrategy[values_pb2.Tensor]:
    """Well-formed uint8 images: exercise the model path, not only the validators."""
    return st.tuples(st.integers(1, 24), st.integers(1, 24), st.sampled_from([1, 3, 4])).map(
        lambda hwc: values_pb2.Tensor(
            dtype="uint8",
            shape=list(hwc),
            data=np.random.default_rng(hwc[0] * 97 + hwc[1])
            .integers(0, 256, hwc, dtype=np.uint8)
            .tobytes(),
        )
    )


def images() -> st.SearchStrategy[values_pb2.Value]:
    encoded = st.one_of(
        st.binary(max_size=2048),
        st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"BM"]).flatmap(
            lambda magic: st.binary(max_size=512).map(lambda rest: magic + rest)
        ),
    )
    return st.one_of(
        encoded.map(lambda b: values_pb2.Value(image_value=values_pb2.Image(encoded=b))),
        st.one_of(tensors(), consistent_images()).map(
            lambda t: values_pb2.Value(image_value=values_pb2.Image(array=t))
        ),
    )


def values() -> st.SearchStrategy[values_pb2.Value]:
    scalars = st.one_of(
        st.just(values_pb2.Value(null_value=0)),
        st.booleans().map(lambda b: values_pb2.Value(bool_value=b)),
        st.integers(-(2**63), 2**63 - 1).map(lambda i: values_pb2.Value(int_value=i)),
        st.floats(allow_nan=True, allow_infinity=True).map(
            lambda f: values_pb2.Value(number_value=f)
        ),
        st.text(max_size=64).map(lambda s: values_pb2.Value(string_value=s)),
        st.binary(max_size=256).map(lambda b: values_pb2.Value(bytes_value=b)),
        images(),
    )

    def nest(children: st.SearchStrategy[values_pb2.Value]) -> st.SearchStrategy[values_pb2.Value]:
        lists = st.lists(children, max_size=4).map(
            lambda vs: values_pb2.Value(list_value=values_pb2.ListValue(values=vs))
        )
        structs = st.dictionaries(st.text(max_size=12), children, max_size=4).map(
            lambda d: values_pb2.Value(struct_value=values_pb2.StructValue(fields=d))
        )
        return st.one_of(lists, structs)

    return st.recursive(scalars, nest, max_leaves=8)


def near_valid_calls() -> st.SearchStrategy[functions_pb2.CallRequest]:
    """Real functions with real images and edge-case numbers: these reach the models."""
    image = consistent_images().map(
        lambda t: values_pb2.Value(image_value=values_pb2.Image(array=t))
    )
    integer = st.integers(-3, 70).map(lambda i: values_pb2.Value(int_value=i))
    text = st.sampled_from(["png", "jpeg", "webp", "bmp", "tiff", "gif", ""]).map(
        lambda f: values_pb2.Value(string_value=f)
    )
    shapes = {
        "greyscale": {},
        "rotate": {"angle": integer},
        "resize": {"width": integer, "height": integer},
        "color_depth": {"bits": integer},
        "convert_format": {"format": text, "quality": integer},
    }
    return st.sampled_from(sorted(shapes)).flatmap(
        lambda name: st.fixed_dictionaries({"image": image, **shapes[name]}).map(
            lambda args: functions_pb2.CallRequest(function=name, arguments=args)
        )
    )


def call_requests() -> st.SearchStrategy[functions_pb2.CallRequest]:
    names = st.one_of(st.sampled_from(FUNCTIONS), st.text(max_size=24))
    arguments = st.dictionaries(
        st.one_of(st.sampled_from(PARAMETERS), st.text(max_size=12)), values(), max_size=5
    )
    anything = st.builds(
        lambda f, args: functions_pb2.CallRequest(function=f, arguments=args), names, arguments
    )
    return st.one_of(anything, near_valid_calls())


@pytest.fixture(scope="module")
def channel(address: str) -> Iterator[grpc.Channel]:
    options = [("grpc.max_send_message_length", 2 * DEFAULT_MAX_MESSAGE_BYTES)]
    with grpc.insecure_channel(address, options=options) as ch:
        yield ch


def assert_still_healthy(channel: grpc.Channel, address: str, rgb: np.ndarray) -> None:
    reply = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="toolmesh.v1.Functions"), timeout=10
    )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    with SyncClient(address, timeout=60) as client:
        assert_greyscale_of(client.call("greyscale", image=rgb), rgb)


def test_fuzzed_calls_get_precise_statuses(
    channel: grpc.Channel, address: str, rgb_pattern: np.ndarray
) -> None:
    stub = functions_pb2_grpc.FunctionsStub(channel)
    seen: dict[grpc.StatusCode, int] = {}

    @settings(FUZZ_SETTINGS, max_examples=int(250 * SCALE))
    @given(request=call_requests())
    def one(request: functions_pb2.CallRequest) -> None:
        try:
            stub.Call(request, timeout=60)
            code = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            code = exc.code()
            assert code in ALLOWED, f"{code.name}: {exc.details()} for {request!r:.500}"
            assert exc.details(), "an error status must say what was wrong"
        seen[code] = seen.get(code, 0) + 1

    one()
    # The campaign reached both the validators and the models.
    assert seen.get(grpc.StatusCode.INVALID_ARGUMENT, 0) > 0
    assert seen.get(grpc.StatusCode.OK, 0) > 0
    assert_still_healthy(channel, address, rgb_pattern)


@dataclass(frozen=True)
class Method:
    path: str
    client_streaming: bool
    server_streaming: bool

    @property
    def implemented(self) -> bool:
        service, name = self.path.strip("/").split("/")
        return service != "inference.GRPCInferenceService" or name in PROXIED_KSERVE


@pytest.fixture(scope="module")
def methods(channel: grpc.Channel) -> list[Method]:
    """Every method of every service the gateway lists, read through its reflection service."""
    database = ProtoReflectionDescriptorDatabase(channel)
    pool = DescriptorPool(database)
    found = []
    for service_name in database.get_services():
        service = pool.FindServiceByName(service_name)
        for method in service.methods:
            found.append(
                Method(
                    f"/{service.full_name}/{method.name}",
                    method.client_streaming,
                    method.server_streaming,
                )
            )
    return found


def send_raw(channel: grpc.Channel, method: Method, payload: bytes) -> grpc.StatusCode:
    identity = {"request_serializer": None, "response_deserializer": None}
    try:
        if method.client_streaming:
            responses = channel.stream_stream(method.path, **identity)(iter([payload]), timeout=5)
            for _ in responses:
                pass
        elif method.server_streaming:
            for _ in channel.unary_stream(method.path, **identity)(payload, timeout=2):
                pass
        else:
            channel.unary_unary(method.path, **identity)(payload, timeout=30)
    except grpc.RpcError as exc:
        code: grpc.StatusCode = exc.code()
        streaming_timeout = method.server_streaming and code == grpc.StatusCode.DEADLINE_EXCEEDED
        not_proxied = not method.implemented and code == grpc.StatusCode.UNIMPLEMENTED
        assert code in ALLOWED or streaming_timeout or not_proxied, (
            f"{method.path}: {code.name}: {exc.details()} for {len(payload)} bytes"
        )
        return code
    return grpc.StatusCode.OK


def test_reflection_lists_every_service_the_gateway_serves(methods: list[Method]) -> None:
    services = {m.path.split("/")[1] for m in methods}
    assert {
        "toolmesh.v1.Functions",
        "toolmesh.v1.Registry",
        "toolmesh.v1.Mesh",
        "inference.GRPCInferenceService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= services
    assert len(methods) >= 15


def test_random_and_truncated_bytes_to_every_method(
    channel: grpc.Channel, methods: list[Method], address: str, rgb_pattern: np.ndarray
) -> None:
    valid = functions_pb2.CallRequest(function="greyscale")
    valid.arguments["image"].image_value.array.dtype = "uint8"
    valid.arguments["image"].image_value.array.shape.extend([4, 4, 3])
    valid.arguments["image"].image_value.array.data = bytes(range(48))
    serialized = valid.SerializeToString()
    invalid_seen = 0

    @settings(FUZZ_SETTINGS, max_examples=int(400 * SCALE))
    @given(
        method=st.sampled_from(methods),
        payload=st.one_of(
            st.binary(max_size=4096),
            st.integers(0, len(serialized) - 1).map(lambda n: serialized[:n]),
            st.binary(min_size=1, max_size=64).map(lambda junk: serialized + junk),
        ),
    )
    def one(method: Method, payload: bytes) -> None:
        nonlocal invalid_seen
        if send_raw(channel, method, payload) == grpc.StatusCode.INVALID_ARGUMENT:
            invalid_seen += 1

    one()
    assert invalid_seen > 0  # malformed bytes were recognised as such, precisely
    assert_still_healthy(channel, address, rgb_pattern)


def test_oversized_requests_are_refused_by_size_on_every_unary_method(
    channel: grpc.Channel, methods: list[Method], address: str, rgb_pattern: np.ndarray
) -> None:
    oversized = b"\x0a" + b"\xff" * (DEFAULT_MAX_MESSAGE_BYTES + 16)
    for method in methods:
        if method.client_streaming or method.server_streaming or not method.implemented:
            continue
        assert send_raw(channel, method, oversized) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert_still_healthy(channel, address, rgb_pattern)
