"""Several Triton servers behind one gateway: spread, ejection on a real kill, re-admission.

Two tritonserver processes stand in for two nodes. Every successful call's
result is checked against the expected greyscale image, so a wrong answer at
any point fails the test, not only an error.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton

import toolmesh
from toolmesh.v1 import mesh_pb2, mesh_pb2_grpc
from toolmesh_gateway.config import GatewaySettings
from toolmesh_gateway.server import start_gateway
from toolmesh_local.mesh import LocalMesh

IMAGE = np.random.default_rng(11).integers(0, 256, (24, 32, 3), dtype=np.uint8)
EXPECTED = np.round(IMAGE.astype(np.float64) @ [0.299, 0.587, 0.114])


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    mesh = LocalMesh(run_dir=tmp_path_factory.mktemp("two-nodes"), models=["greyscale"], nodes=2)
    mesh.start(timeout=180)
    try:
        yield mesh
    finally:
        mesh.stop()


def inference_count(url: str) -> int:
    stats = triton.InferenceServerClient(url).get_inference_statistics("greyscale")
    return sum(s.inference_count for s in stats.model_stats)


def endpoint_health(address: str) -> dict[str, bool]:
    with grpc.insecure_channel(address) as channel:
        reply = mesh_pb2_grpc.MeshStub(channel).Status(mesh_pb2.StatusRequest(), timeout=5)
    return {e.url: e.healthy for e in reply.endpoints}


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.2)


async def greyscale_calls(address: str, count: int, concurrency: int = 4) -> list[Exception]:
    """``count`` calls; returns the errors; a wrong result raises at once."""
    errors: list[Exception] = []
    semaphore = asyncio.Semaphore(concurrency)
    async with toolmesh.Client(address, timeout=20) as client:

        async def one() -> None:
            async with semaphore:
                try:
                    grey = await client.call("greyscale", image=IMAGE)
                except toolmesh.ToolmeshError as exc:
                    errors.append(exc)
                    return
                assert np.abs(np.asarray(grey, dtype=np.float64) - EXPECTED).max() <= 1

        await asyncio.gather(*(one() for _ in range(count)))
    return errors


def test_calls_spread_over_both_nodes(two_nodes: LocalMesh) -> None:
    before = [inference_count(url) for url in two_nodes.triton_urls]
    errors = asyncio.run(greyscale_calls(two_nodes.address, 40))
    assert errors == []
    after = [inference_count(url) for url in two_nodes.triton_urls]
    served = [a - b for a, b in zip(after, before, strict=True)]
    assert sum(served) == 40
    assert min(served) >= 5, f"load not spread: {served}"


def test_killed_node_is_ejected_and_restarted_node_readmitted(two_nodes: LocalMesh) -> None:
    victim = two_nodes.tritons[0]
    assert victim.process is not None
    os.kill(victim.process.pid, signal.SIGKILL)
    victim.process.wait(10)
    # Under load while the gateway notices: failures may only be UNAVAILABLE.
    errors = asyncio.run(greyscale_calls(two_nodes.address, 30))
    assert all(isinstance(e, toolmesh.Unavailable) for e in errors), [repr(e) for e in errors]
    wait_for(lambda: not endpoint_health(two_nodes.address)[victim.grpc_url])
    # After the detection window every call succeeds (on the surviving node).
    assert asyncio.run(greyscale_calls(two_nodes.address, 30)) == []

    victim.process = None
    victim.start(timeout=120)  # same ports: the node comes back
    wait_for(lambda: endpoint_health(two_nodes.address)[victim.grpc_url])
    assert asyncio.run(greyscale_calls(two_nodes.address, 40)) == []
    served = inference_count(victim.grpc_url)
    assert served >= 3, f"re-admitted node received {served} of 40 calls"


def test_kserve_path_fails_over_too(two_nodes: LocalMesh) -> None:
    client = triton.InferenceServerClient(two_nodes.address)
    pixels = triton.InferInput("image_array", list(IMAGE.shape), "UINT8")
    pixels.set_data_from_numpy(IMAGE)
    victim = two_nodes.tritons[1]
    assert victim.process is not None
    os.kill(victim.process.pid, signal.SIGKILL)
    victim.process.wait(10)
    try:
        for _ in range(10):  # the first may hit the dead node: retried once on the other
            out = client.infer("greyscale", [pixels]).as_numpy("result")
            assert np.abs(out[..., 0].astype(np.float64) - EXPECTED).max() <= 1
    finally:
        victim.process = None
        victim.start(timeout=120)


async def test_endpoints_that_declare_no_model_for_a_function_refuse_to_start(
    tmp_path: Path,
) -> None:
    endpoints = tmp_path / "endpoints.yaml"
    endpoints.write_text("endpoints:\n  - url: 127.0.0.1:1\n    models: [greyscale, rotate]\n")
    settings = GatewaySettings.from_env(address="127.0.0.1:0", endpoints_file=endpoints)
    with pytest.raises(ValueError, match="find") as info:
        await start_gateway(settings)
    assert "no configured Triton endpoint serves" in str(info.value)


async def test_function_whose_model_no_node_serves_is_unavailable(two_nodes: LocalMesh) -> None:
    async with toolmesh.Client(two_nodes.address, timeout=10) as client:
        with pytest.raises(toolmesh.Unavailable, match="'find'"):
            await client.call("find", image=IMAGE, object_name="person")
