"""Overload protection: bounded slots and queue, per-client caps, RESOURCE_EXHAUSTED at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc.aio as triton_aio
from tritonclient.utils import InferenceServerException

import toolmesh
from tests.security.conftest import ALICE, OPS, assert_greyscale_of, running_gateway
from toolmesh_gateway.limits import Admission, Limits, Overloaded, peer_host
from toolmesh_local.mesh import LocalMesh

# --- the admission primitive, on its own -------------------------------------------------


async def until(predicate: Callable[[], bool], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


async def test_slots_pass_to_waiters_in_arrival_order() -> None:
    admission = Admission(Limits(max_in_flight=1, max_queue=3, max_per_client=10))
    await admission.acquire("a", 1)
    order: list[str] = []

    async def waiter(name: str) -> None:
        await admission.acquire(name, 5)
        order.append(name)
        admission.release(name)

    tasks = []
    for count, name in enumerate(("b", "c", "d"), start=1):
        tasks.append(asyncio.create_task(waiter(name)))
        await until(lambda count=count: admission.queued == count)
    with pytest.raises(Overloaded, match="gateway at capacity: 1 calls running and 3 queued"):
        await admission.acquire("e", 1)
    admission.release("a")
    await asyncio.gather(*tasks)
    assert order == ["b", "c", "d"]
    assert (admission.in_flight, admission.queued, admission.rejected) == (0, 0, 1)


async def test_per_client_cap_counts_running_and_queued_calls() -> None:
    admission = Admission(Limits(max_in_flight=1, max_queue=5, max_per_client=2))
    await admission.acquire("greedy", 1)
    queued = asyncio.create_task(admission.acquire("greedy", 5))
    await until(lambda: admission.queued == 1)
    with pytest.raises(Overloaded, match="client 'greedy' already has 2 calls"):
        await admission.acquire("greedy", 1)
    polite = asyncio.create_task(admission.acquire("polite", 5))  # others still get in line
    await until(lambda: admission.queued == 2)
    admission.release("greedy")
    await queued
    admission.release("greedy")
    await polite
    admission.release("polite")
    assert admission.in_flight == 0 and admission.holding("greedy") == 0


async def test_a_waiter_that_times_out_or_is_cancelled_leaves_no_trace() -> None:
    admission = Admission(Limits(max_in_flight=1, max_queue=5, max_per_client=5))
    await admission.acquire("a", 1)
    with pytest.raises(TimeoutError):
        await admission.acquire("b", 0.05)
    cancelled = asyncio.create_task(admission.acquire("c", 5))
    await until(lambda: admission.queued == 1)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert admission.queued == 0 and admission.holding("b") == admission.holding("c") == 0
    admission.release("a")
    assert admission.in_flight == 0
    await admission.acquire("d", 1)  # the slot is really free again
    assert admission.in_flight == 1


async def test_a_slot_handed_to_a_cancelled_waiter_is_passed_on() -> None:
    admission = Admission(Limits(max_in_flight=1, max_queue=5, max_per_client=5))
    await admission.acquire("a", 1)
    first = asyncio.create_task(admission.acquire("b", 5))
    second = asyncio.create_task(admission.acquire("c", 5))
    await until(lambda: admission.queued == 2)
    admission.release("a")  # b now owns the slot but has not run yet…
    first.cancel()  # …and gives up before it does
    with pytest.raises(asyncio.CancelledError):
        await first
    await second  # the slot went on to c
    assert admission.in_flight == 1 and admission.holding("c") == 1
    admission.release("c")
    assert admission.in_flight == 0


def test_limits_and_peer_names() -> None:
    with pytest.raises(ValueError, match="max_in_flight ≥ 1"):
        Limits(max_in_flight=0)
    assert peer_host("ipv4:127.0.0.1:50123") == "127.0.0.1"
    assert peer_host("ipv6:[::1]:50123") == "[::1]"
    assert peer_host("unix:/tmp/socket") == "unix:/tmp/socket"


# --- through a real gateway ------------------------------------------------------------


async def test_past_the_queue_a_call_is_refused_at_once_and_queued_ones_still_run(
    mesh: LocalMesh, rgb_pattern: np.ndarray
) -> None:
    limits = Limits(max_in_flight=1, max_queue=1, max_per_client=10)
    async with running_gateway(mesh, limits=limits) as gw:
        admission = gw.admission
        async with toolmesh.Client(f"127.0.0.1:{gw.port}") as client:
            await admission.acquire("holder", 1)  # the only slot is busy
            queued = asyncio.create_task(client.call("greyscale", image=rgb_pattern))
            await until(lambda: admission.queued == 1)
            with pytest.raises(toolmesh.ResourceExhausted, match="gateway at capacity"):
                await client.call("greyscale", image=rgb_pattern)
            admission.release("holder")
            assert_greyscale_of(await queued, rgb_pattern)
            assert (admission.in_flight, admission.queued) == (0, 0)
            # Afterwards, calls run normally: one runs while the other waits its turn.
            results = await asyncio.gather(
                *(client.call("greyscale", image=rgb_pattern) for _ in range(2))
            )
            for grey in results:
                assert_greyscale_of(grey, rgb_pattern)
        metrics = gw.metrics.registry
        assert metrics.get_sample_value("toolmesh_admission_rejected_total") == 1
        assert (
            metrics.get_sample_value(
                "toolmesh_rpc_total",
                {"method": "Call", "function": "greyscale", "code": "RESOURCE_EXHAUSTED"},
            )
            == 1
        )


async def test_one_client_at_its_cap_does_not_block_another(
    mesh: LocalMesh, tokens_file: Path, rgb_pattern: np.ndarray
) -> None:
    limits = Limits(max_in_flight=4, max_queue=4, max_per_client=1)
    async with running_gateway(mesh, limits=limits, tokens_file=tokens_file) as gw:
        address = f"127.0.0.1:{gw.port}"
        await gw.admission.acquire("alice", 1)  # alice's identity is her token's name
        async with toolmesh.Client(address, token=ALICE) as alice:
            with pytest.raises(toolmesh.ResourceExhausted, match="client 'alice'"):
                await alice.call("greyscale", image=rgb_pattern)
        async with toolmesh.Client(address, token=OPS) as ops:
            assert_greyscale_of(await ops.call("greyscale", image=rgb_pattern), rgb_pattern)
        gw.admission.release("alice")


async def test_a_queued_call_ends_at_its_deadline_and_frees_its_place(
    mesh: LocalMesh, rgb_pattern: np.ndarray
) -> None:
    limits = Limits(max_in_flight=1, max_queue=4, max_per_client=10)
    async with running_gateway(mesh, limits=limits) as gw:
        await gw.admission.acquire("holder", 1)
        async with toolmesh.Client(f"127.0.0.1:{gw.port}", timeout=0.5) as client:
            with pytest.raises(toolmesh.DeadlineExceeded):
                await client.call("greyscale", image=rgb_pattern)
        await until(lambda: gw.admission.queued == 0)
        gw.admission.release("holder")
        assert gw.admission.in_flight == 0


async def test_kserve_infer_is_admitted_through_the_same_limits(
    mesh: LocalMesh, rgb_pattern: np.ndarray
) -> None:
    limits = Limits(max_in_flight=1, max_queue=0, max_per_client=10)
    async with running_gateway(mesh, limits=limits) as gw:
        client = triton_aio.InferenceServerClient(f"127.0.0.1:{gw.port}")
        pixels = triton_aio.InferInput("image_array", list(rgb_pattern.shape), "UINT8")
        pixels.set_data_from_numpy(rgb_pattern)
        try:
            await gw.admission.acquire("holder", 1)
            with pytest.raises(InferenceServerException, match="gateway at capacity"):
                await client.infer("greyscale", [pixels])
            assert await client.is_server_ready()  # metadata RPCs are not admission-bound
            gw.admission.release("holder")
            result = await client.infer("greyscale", [pixels])
            assert_greyscale_of(np.squeeze(result.as_numpy("result")), rgb_pattern)
        finally:
            await client.close()


def test_limits_come_from_the_environment_and_flags_override_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from toolmesh_gateway.config import GatewaySettings

    monkeypatch.setenv("TOOLMESH_MAX_IN_FLIGHT", "3")
    monkeypatch.setenv("TOOLMESH_MAX_QUEUE", "7")
    settings = GatewaySettings.from_env(max_queue=5)
    assert settings.limits == Limits(max_in_flight=3, max_queue=5, max_per_client=256)
    monkeypatch.setenv("TOOLMESH_MAX_PER_CLIENT", "0")
    with pytest.raises(ValueError, match="max_per_client ≥ 1"):
        GatewaySettings.from_env()
