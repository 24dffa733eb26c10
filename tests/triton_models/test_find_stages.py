"""`find` in the running Triton: unbatched on the CPU (each request its own execution, so
no instance waits behind a batch-mate) and its stages counted in Triton's metrics."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request

import toolmesh
from toolmesh_local.mesh import LocalMesh

STAGES = ("decode", "resize", "infer", "post")


def scrape(mesh: LocalMesh) -> str:
    assert mesh.triton is not None
    url = f"http://127.0.0.1:{mesh.triton.ports.metrics}/metrics"
    return urllib.request.urlopen(url, timeout=5).read().decode()


def value(text: str, metric: str, **labels: str) -> float:
    """Sum of the samples of ``metric`` whose labels include ``labels``."""
    total = 0.0
    for label_text, number in re.findall(rf"^{metric}\{{([^}}]*)\}} (\S+)$", text, re.M):
        found = dict(re.findall(r'(\w+)="([^"]*)"', label_text))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(number)
    return total


async def test_find_runs_unbatched_and_counts_its_stages(
    mesh: LocalMesh, client: toolmesh.Client, street_jpeg: bytes
) -> None:
    calls = 8
    before = scrape(mesh)
    found = await asyncio.gather(
        *(client.call("find", image=street_jpeg, object_name="person") for _ in range(calls))
    )
    assert all(found) and len({len(f) for f in found}) == 1  # the same answer eight times
    # Triton counts a request once its response is out, which can be just after the
    # client has it: wait (bounded) until every request is counted, then compare all.
    deadline = time.monotonic() + 10
    while True:
        after = scrape(mesh)
        counted = value(after, "nv_inference_request_success", model="find")
        done = counted - value(before, "nv_inference_request_success", model="find") >= calls
        if done or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)

    def delta(metric: str, **labels: str) -> float:
        return value(after, metric, **labels) - value(before, metric, **labels)

    assert delta("nv_inference_request_success", model="find") == calls
    # eight concurrent requests, eight executions: no batch was formed on the CPU
    assert delta("nv_inference_exec_count", model="find") == calls
    for stage in STAGES:
        assert delta("toolmesh_stage_count", model="find", stage=stage) == calls, stage
        assert delta("toolmesh_stage_duration_us", model="find", stage=stage) > 0, stage
