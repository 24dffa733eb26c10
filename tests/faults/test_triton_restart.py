"""Triton SIGKILLed under load, then restarted on the same ports.

Eight callers keep calling ``greyscale`` on images whose answers are computed
here, through a mesh of this module's own (the session mesh is never touched).
During the outage a caller may only get UNAVAILABLE; the gateway reports
NOT_SERVING while no Triton is there and SERVING again after; every answer a
caller was told succeeded is the right one, before, during and after.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator

import pytest
from grpc_health.v1 import health_pb2

import toolmesh
from tests.faults.support import SERVING, Load, health, is_greyscale_of, pattern, wait_until
from toolmesh_local.mesh import LocalMesh

pytestmark = pytest.mark.timeout(120)

IMAGES = [pattern(seed) for seed in range(8)]
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    local = LocalMesh(run_dir=tmp_path_factory.mktemp("triton-restart"), models=["greyscale"])
    local.start(timeout=180)
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture
def running(mesh: LocalMesh) -> LocalMesh:
    """The module's mesh with its Triton up (a failed test may have left it down)."""
    triton = mesh.triton
    assert triton is not None
    if triton.process is None or triton.process.poll() is not None:
        triton.process = None
        triton.start(timeout=120)
    return mesh


async def is_status(address: str, status: int) -> bool:
    return await health(address) == status


async def kill_triton(mesh: LocalMesh) -> None:
    triton = mesh.triton
    assert triton is not None and triton.process is not None
    os.kill(triton.process.pid, signal.SIGKILL)
    await asyncio.to_thread(triton.process.wait, 10)


async def restart_triton(mesh: LocalMesh) -> None:
    """Same ports (TritonServer keeps them): the gateway must find it again by itself."""
    triton = mesh.triton
    assert triton is not None
    triton.process = None
    await asyncio.to_thread(triton.start, 120)


async def test_triton_killed_under_load_and_restarted(running: LocalMesh) -> None:
    mesh = running
    load = Load(IMAGES)
    async with toolmesh.Client(mesh.address, timeout=20) as client:
        load.start(client, callers=8)
        try:
            await wait_until(lambda: load.ok >= 40, "40 good calls before the kill")
            await kill_triton(mesh)
            ok_at_kill = load.ok
            # No Triton: the callers fail, and the gateway says so on its health service.
            await wait_until(lambda: load.errors, "a failed call while Triton is down")
            await wait_until(
                lambda: is_status(mesh.address, NOT_SERVING), "NOT_SERVING while Triton is down"
            )
            await restart_triton(mesh)
            await wait_until(lambda: is_status(mesh.address, SERVING), "SERVING after the restart")
            # Calls that began while Triton was down end within moments; from then on,
            # SERVING must mean what it says: every call succeeds (the health check
            # covers each connection the calls use, so it cannot run ahead of them).
            await asyncio.sleep(0.5)
            ok_at_restart, errors_at_restart = load.ok, len(load.errors)
            await wait_until(lambda: load.ok >= ok_at_restart + 40, "40 good calls after")
            after_serving = load.errors[errors_at_restart:]
        finally:
            await load.finish()
    assert load.wrong == [], f"wrong greyscale answers from callers {load.wrong}"
    outage = [e for e in load.errors if not isinstance(e, toolmesh.Unavailable)]
    assert outage == [], [repr(e) for e in outage]
    assert ok_at_kill >= 40
    assert after_serving == [], [repr(e) for e in after_serving]
    # After recovery a fresh client is served too, with the right answer, and the
    # health service settles on SERVING (it follows the endpoint pool every 0.5 s).
    async with toolmesh.Client(mesh.address, timeout=20) as fresh:
        for image in IMAGES:
            assert is_greyscale_of(await fresh.call("greyscale", image=image), image)
    await wait_until(lambda: is_status(mesh.address, SERVING), "SERVING at the end", timeout=10)
    assert mesh.gateway is not None and mesh.gateway.poll() is None, "the gateway exited"
