"""The scale-out path rehearsed on this machine: three Triton "pods", each in a network
namespace of its own on a bridge, the stand-in API server publishing their EndpointSlices,
and a real gateway configured as in a cluster (``TOOLMESH_DISCOVERY=kubernetes``), under
steady load from the SDK while the pool scales 1 → 3, a pod terminates and is drained,
a pod is SIGKILLed, and a slice disappears.

Calls per pod are counted from each Triton's own statistics, not from the gateway.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

import toolmesh
from tests.faults.support import wait_until
from toolmesh.v1 import mesh_pb2, mesh_pb2_grpc
from toolmesh_gateway.config import GatewaySettings
from toolmesh_gateway.server import Gateway, start_gateway
from toolmesh_local.cluster import RehearsalPod, RehearsalPool
from toolmesh_models.paths import FUNCTIONS_DIR

CALLERS = 4


@dataclass
class Outcome:
    started: float
    ended: float
    error: str = ""


@dataclass
class SteadyLoad:
    """Callers that call ``find`` back to back until stopped, recording every outcome."""

    image: bytes
    outcomes: list[Outcome] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def caller(self, client: toolmesh.Client) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                await client.call("find", image=self.image, object_name="person")
                self.outcomes.append(Outcome(started, time.monotonic()))
            except toolmesh.ToolmeshError as exc:
                self.outcomes.append(Outcome(started, time.monotonic(), f"{exc}"))
                await asyncio.sleep(0.05)

    def start(self, client: toolmesh.Client) -> None:
        self.tasks = [asyncio.create_task(self.caller(client)) for _ in range(CALLERS)]

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.wait_for(asyncio.gather(*self.tasks), 60)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.error]

    async def more_calls(self, count: int) -> None:
        """Wait until ``count`` more calls have completed (whatever their outcome)."""
        target = len(self.outcomes) + count
        await wait_until(lambda: len(self.outcomes) >= target, f"{count} more calls", 60)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RehearsalPool]:
    with RehearsalPool(tmp_path_factory.mktemp("cluster"), pods=3) as pool:
        yield pool


@pytest.fixture
async def gateway(
    cluster: RehearsalPool, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Gateway]:
    environment = cluster.environment(cluster.functions_dir(FUNCTIONS_DIR))
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    first = cluster.pods[0]
    cluster.publish({first.name: "ready"})  # the pool starts with one pod
    running = await start_gateway(GatewaySettings.from_env(address="127.0.0.1:0"))
    try:
        yield running
    finally:
        await running.stop(0)


def endpoint_of(gateway: Gateway, pod: RehearsalPod):
    return next((e for e in gateway.pool.endpoints if e.url == pod.url), None)


async def first_call_after(cluster: RehearsalPool, pod: RehearsalPod, baseline: int) -> float:
    """Poll the pod's Triton until it has answered a call more than ``baseline``; when."""
    await wait_until(lambda: cluster.successes(pod) > baseline, f"a call on {pod.name}", 30, 0.05)
    return time.monotonic()


async def test_the_pool_scales_drains_and_loses_a_pod_under_load(
    cluster: RehearsalPool, gateway: Gateway, street_jpeg: bytes
) -> None:
    p0, p1, p2 = cluster.pods
    start = {p.name: cluster.successes(p) for p in cluster.pods}
    load = SteadyLoad(street_jpeg)
    async with toolmesh.Client(f"127.0.0.1:{gateway.port}", timeout=60) as client:
        load.start(client)
        try:
            # -- one pod: it takes every call; pods outside the slice get none
            await first_call_after(cluster, p0, start[p0.name])
            await load.more_calls(10)
            assert cluster.successes(p1) == start[p1.name]
            assert cluster.successes(p2) == start[p2.name]

            # -- scale 1 -> 3: the new pods get calls within seconds of being ready
            published = time.monotonic()
            cluster.publish({p.name: "ready" for p in cluster.pods})
            reached = await asyncio.gather(
                first_call_after(cluster, p1, start[p1.name]),
                first_call_after(cluster, p2, start[p2.name]),
            )
            reaction = [t - published for t in reached]
            await load.more_calls(30)
            spread = [cluster.successes(p) - start[p.name] for p in cluster.pods]
            assert min(spread) > 0, spread
            metrics = scrape(gateway)
            for pod in cluster.pods:
                assert ("cpu", pod.name, pod.url) in metrics, "in-flight per pod for the HPA"
            assert not load.failures, load.failures[:3]

            # -- p1 terminates: drained (its calls finish, no new ones), nothing fails
            cluster.publish({p0.name: "ready", p1.name: "terminating", p2.name: "ready"})
            await wait_until(
                lambda: (e := endpoint_of(gateway, p1)) is not None and e.draining,
                "p1 draining",
            )
            await wait_until(lambda: endpoint_of(gateway, p1).in_flight == 0, "p1 drained")
            status = {e.pod: e for e in await mesh_status(gateway)}
            assert status[p1.name].draining and status[p1.name].pool == "cpu"
            assert not status[p0.name].draining and status[p0.name].url == p0.url
            shown = await toolmesh_status(gateway)
            row = next(line for line in shown.splitlines() if p1.url in line)
            assert p1.name in row and "draining" in row and "cpu" in row, shown
            await asyncio.sleep(0.5)  # Triton counts a call once its response is out
            drained_at = cluster.successes(p1)
            await load.more_calls(20)
            assert cluster.successes(p1) == drained_at, "a draining pod got a new call"
            assert not load.failures, load.failures[:3]
            # ... and once it leaves the slice its connection is closed and forgotten
            cluster.publish({p0.name: "ready", p2.name: "ready"})
            await wait_until(lambda: endpoint_of(gateway, p1) is None, "p1 gone from the pool")

            # -- p2 is SIGKILLed: only calls in flight on it may fail (and are retried)
            calls_at_kill = len(load.outcomes)
            killed = time.monotonic()
            cluster.kill(p2)
            await wait_until(lambda: not endpoint_of(gateway, p2).healthy, "p2 ejected")
            detected = time.monotonic()
            await load.more_calls(20)
            late = [o for o in load.failures if o.started > detected]
            assert not late, f"calls failed after the dead pod was ejected: {late[:3]}"
            assert len(load.failures) <= CALLERS, load.failures
            assert len(load.outcomes) > calls_at_kill + 20
            # the controller then reports it not ready, and removes it
            cluster.publish({p0.name: "ready", p2.name: "not-ready"})
            await wait_until(lambda: endpoint_of(gateway, p2).draining, "p2 draining")
            cluster.publish({p0.name: "ready"})
            await wait_until(lambda: endpoint_of(gateway, p2) is None, "p2 gone from the pool")

            # -- a second slice brings p1 back; deleting the first removes p0
            before_p1 = cluster.successes(p1)
            cluster.publish({p1.name: "ready"}, name="b")
            await first_call_after(cluster, p1, before_p1)
            cluster.delete_slice("a")
            await wait_until(lambda: endpoint_of(gateway, p0) is None, "p0 gone from the pool")
            await asyncio.sleep(0.5)
            left_at = cluster.successes(p0)
            before_p1 = cluster.successes(p1)
            await load.more_calls(20)
            assert cluster.successes(p0) == left_at, "a pod gone from its slices got a call"
            # every one of them went to p1 (up to CALLERS of them Triton counted before_p1)
            assert cluster.successes(p1) >= before_p1 + 20 - CALLERS
        finally:
            await load.finish()
    failed_before_detection = [o for o in load.failures if killed <= o.started <= detected]
    assert len(load.failures) == len(failed_before_detection)
    print(
        f"\nrehearsal: new pods' first call {reaction[0]:.2f} s / {reaction[1]:.2f} s after "
        f"ready; spread {spread}; SIGKILL detected in {detected - killed:.2f} s; "
        f"{len(load.outcomes)} calls, {len(load.failures)} failed"
    )


async def mesh_status(gateway: Gateway) -> list[mesh_pb2.EndpointStatus]:
    """What `toolmesh status` shows: the gateway's Mesh Status, over gRPC."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        reply = await mesh_pb2_grpc.MeshStub(channel).Status(mesh_pb2.StatusRequest(), timeout=5)
    return list(reply.endpoints)


async def toolmesh_status(gateway: Gateway) -> str:
    """`toolmesh status` as a user runs it (a process: the gateway lives in this event loop)."""
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "toolmesh"),
        "status",
        "--address",
        f"127.0.0.1:{gateway.port}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "250"},
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, output.decode()
    return output.decode()


def scrape(gateway: Gateway) -> set[tuple[str, str, str]]:
    """(pool, triton_pod, endpoint) of every ``toolmesh_endpoint_in_flight`` sample."""
    text = generate_latest(gateway.metrics.registry).decode()
    return {
        (s.labels["pool"], s.labels["triton_pod"], s.labels["endpoint"])
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "toolmesh_endpoint_in_flight"
    }


def test_the_pods_are_separate_hosts(cluster: RehearsalPool) -> None:
    addresses = {p.address for p in cluster.pods}
    assert len(addresses) == len(cluster.pods)
    assert all(Path(f"/run/netns/{p.node.name}").exists() for p in cluster.pods)
    # each Triton listens on the pod ports at its own address only
    assert {p.url.rpartition(":")[2] for p in cluster.pods} == {"8001"}
