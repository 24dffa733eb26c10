"""Prometheus metrics: calls by function and status, and the endpoints behind the gateway."""

from __future__ import annotations

import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

import toolmesh
from toolmesh_local.mesh import LocalMesh


def scrape(mesh: LocalMesh) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(mesh.metrics_url, timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def calls(samples: dict, function: str, code: str) -> float:
    key = ("toolmesh_rpc_total", (("code", code), ("function", function), ("method", "Call")))
    return samples.get(key, 0.0)


async def test_calls_are_counted_by_function_and_status(
    mesh: LocalMesh, client: toolmesh.Client, street_jpeg: bytes
) -> None:
    before = scrape(mesh)
    await client.call("find", image=street_jpeg, object_name="person")
    await client.call("find", image=street_jpeg, object_name="person")
    with pytest.raises(toolmesh.InvalidArgument):
        await client.call("find", image=street_jpeg, object_name="unicorn")
    # The interceptor records a call when the handler unwinds, which for an aborted call
    # can be just after the client has its status: wait until the error is counted.
    deadline = time.monotonic() + 10
    after = scrape(mesh)
    while (
        calls(after, "find", "INVALID_ARGUMENT") == calls(before, "find", "INVALID_ARGUMENT")
        and time.monotonic() < deadline
    ):
        time.sleep(0.1)
        after = scrape(mesh)
    assert calls(after, "find", "OK") - calls(before, "find", "OK") == 2
    assert calls(after, "find", "INVALID_ARGUMENT") - calls(before, "find", "INVALID_ARGUMENT") == 1
    assert mesh.triton is not None
    # a configured endpoint: no pool, no pod (those name discovered ones)
    endpoint = (("endpoint", mesh.triton.grpc_url), ("pool", ""), ("triton_pod", ""))
    assert after[("toolmesh_endpoint_healthy", endpoint)] == 1.0
    assert after[("toolmesh_endpoint_draining", endpoint)] == 0.0
    assert (
        after[("toolmesh_endpoint_calls", endpoint)]
        >= before[("toolmesh_endpoint_calls", endpoint)] + 3
    )
    histogram = ("toolmesh_rpc_seconds_count", (("function", "find"), ("method", "Call")))
    assert after[histogram] - before.get(histogram, 0.0) == 3
