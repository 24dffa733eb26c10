"""Bad input gets a precise status and message; the gateway stays up; good calls still work."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import toolmesh
from toolmesh.v1 import functions_pb2, functions_pb2_grpc, values_pb2
from toolmesh_local.mesh import LocalMesh


async def assert_still_serving(client: toolmesh.Client, street_jpeg: bytes) -> None:
    people = await client.call("find", image=street_jpeg, object_name="person")
    assert len(people) >= 3


async def test_unknown_function_is_not_found_and_lists_the_registry(
    client: toolmesh.Client, street_jpeg: bytes
) -> None:
    with pytest.raises(toolmesh.FunctionNotFound) as info:
        await client.call("detect_unicorns", image=street_jpeg)
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    assert "detect_unicorns" in info.value.details and "find" in info.value.details
    await assert_still_serving(client, street_jpeg)


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ({"object_name": 42}, "object_name"),
        ({"object_name": "person", "threshold": "high"}, "threshold"),
        ({"object_name": "person", "threshold": 1.5}, "threshold"),
        ({"object_name": ""}, "object_name"),
        ({"object_name": "person", "colour": "red"}, "unknown argument 'colour'"),
        ({}, "missing required argument(s) for find: object_name"),
        ({"object_name": "unicorn"}, "unicorn"),
    ],
)
async def test_bad_arguments_are_invalid_argument_naming_the_field(
    client: toolmesh.Client, street_jpeg: bytes, arguments: dict, fragment: str
) -> None:
    with pytest.raises(toolmesh.InvalidArgument) as info:
        await client.call("find", image=street_jpeg, **arguments)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in info.value.details
    await assert_still_serving(client, street_jpeg)


async def test_unknown_object_name_lists_what_the_detector_knows(
    client: toolmesh.Client, street_jpeg: bytes
) -> None:
    with pytest.raises(toolmesh.InvalidArgument) as info:
        await client.call("find", image=street_jpeg, object_name="unicorn")
    assert "person" in info.value.details and "car" in info.value.details


@pytest.mark.parametrize(
    "image",
    [
        b"definitely not an image",
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,
        b"",
    ],
)
async def test_undecodable_images_are_invalid_argument(
    client: toolmesh.Client, street_jpeg: bytes, image: bytes
) -> None:
    with pytest.raises(toolmesh.InvalidArgument, match="image"):
        await client.call("greyscale", image=image)
    await assert_still_serving(client, street_jpeg)


async def test_truncated_jpeg_is_invalid_argument_from_the_model(
    client: toolmesh.Client, street_jpeg: bytes
) -> None:
    # The header is intact (the gateway's cheap check passes); the body is cut.
    with pytest.raises(toolmesh.InvalidArgument):
        await client.call("find", image=street_jpeg[: len(street_jpeg) // 3], object_name="car")
    await assert_still_serving(client, street_jpeg)


@pytest.mark.parametrize(
    ("array", "fragment"),
    [
        (np.zeros((4, 4, 2), dtype=np.uint8), "H×W×C"),
        (np.zeros((2, 2, 2, 3), dtype=np.uint8), "H×W×C"),
        (np.zeros((4, 4, 3), dtype=np.float32), "float32"),
    ],
)
async def test_bad_pixel_arrays_are_invalid_argument(
    client: toolmesh.Client, street_jpeg: bytes, array: np.ndarray, fragment: str
) -> None:
    with pytest.raises(toolmesh.InvalidArgument, match=fragment):
        await client.call("greyscale", image=array)
    await assert_still_serving(client, street_jpeg)


async def test_malformed_tensor_on_the_wire_is_invalid_argument(
    address: str, client: toolmesh.Client, street_jpeg: bytes
) -> None:
    request = functions_pb2.CallRequest(function="greyscale")
    request.arguments["image"].image_value.array.CopyFrom(
        values_pb2.Tensor(dtype="uint8", shape=[100, 100, 3], data=b"\x00" * 10)
    )
    async with grpc.aio.insecure_channel(address) as channel:
        stub = functions_pb2_grpc.FunctionsStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Call(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "needs 30000 bytes, got 10" in (info.value.details() or "")
    await assert_still_serving(client, street_jpeg)


async def test_decompression_bomb_is_refused_before_the_model(
    client: toolmesh.Client, street_jpeg: bytes
) -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (10_000, 10_000)).save(buffer, format="PNG")  # 100 MP, a few kB compressed
    assert len(buffer.getvalue()) < 200_000
    with pytest.raises(toolmesh.InvalidArgument, match="pixels"):
        await client.call("greyscale", image=buffer.getvalue())
    await assert_still_serving(client, street_jpeg)


async def test_oversized_payload_is_resource_exhausted(
    client: toolmesh.Client, street_jpeg: bytes
) -> None:
    huge = street_jpeg + b"\x00" * (40 * 1024 * 1024)  # over the gateway's 32 MiB default
    with pytest.raises(toolmesh.ResourceExhausted) as info:
        await client.call("find", image=huge, object_name="person")
    assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    await assert_still_serving(client, street_jpeg)


async def test_deadline_is_deadline_exceeded(client: toolmesh.Client, street_jpeg: bytes) -> None:
    hurried = client.with_options(timeout=0.001)
    with pytest.raises(toolmesh.DeadlineExceeded):
        await hurried.call("find", image=street_jpeg, object_name="person")
    await assert_still_serving(client, street_jpeg)


async def test_bad_calls_do_not_disturb_concurrent_good_ones(
    client: toolmesh.Client, street_jpeg: bytes
) -> None:
    good = [client.call("find", image=street_jpeg, object_name="person") for _ in range(6)]
    bad = [client.call("find", image=b"garbage", object_name="person") for _ in range(6)]
    results = await asyncio.gather(*good, *bad, return_exceptions=True)
    assert all(isinstance(r, list) and len(r) >= 3 for r in results[:6])
    assert all(isinstance(r, toolmesh.InvalidArgument) for r in results[6:])


@pytest.fixture(scope="module")
def sync_client(address: str):
    with toolmesh.SyncClient(address, timeout=30) as sync:
        yield sync


argument_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.binary(max_size=64),
    st.lists(st.integers(), max_size=4),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    function=st.sampled_from(
        ["find", "greyscale", "resize", "rotate", "color_depth", "convert_format", "nope"]
    ),
    arguments=st.dictionaries(
        st.sampled_from(
            [
                "image",
                "object_name",
                "threshold",
                "width",
                "height",
                "angle",
                "bits",
                "format",
                "quality",
                "extra",
            ]
        ),
        argument_values,
        max_size=5,
    ),
)
def test_fuzzed_arguments_get_a_client_error_never_a_server_error(
    sync_client: toolmesh.SyncClient, function: str, arguments: dict
) -> None:
    with contextlib.suppress(
        toolmesh.InvalidArgument, toolmesh.FunctionNotFound, toolmesh.WireFormatError
    ):
        sync_client.call(function, **arguments)
    # Any other error (INTERNAL, UNKNOWN, UNAVAILABLE, a crash) fails the test.


async def test_dead_model_server_is_unavailable_and_the_gateway_survives(tmp_path) -> None:
    mesh = LocalMesh(run_dir=tmp_path / "mesh", models=["greyscale"])
    mesh.start(timeout=180)
    try:
        async with toolmesh.Client(mesh.address, timeout=20) as c:
            image = np.zeros((8, 8, 3), dtype=np.uint8)
            assert (await c.call("greyscale", image=image)).size == (8, 8)
            assert mesh.triton is not None and mesh.triton.process is not None
            os.kill(mesh.triton.process.pid, signal.SIGKILL)
            mesh.triton.process.wait(10)
            with pytest.raises(toolmesh.Unavailable) as info:
                await c.call("greyscale", image=image)
            assert "greyscale" in info.value.details
            # The gateway itself is alive and still answers the registry.
            assert {f.name for f in await c.functions()} >= {"greyscale"}
    finally:
        mesh.stop()
