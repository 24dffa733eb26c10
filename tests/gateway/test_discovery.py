"""Endpoint discovery from EndpointSlices, without a cluster: slice parsing, the pool's
membership rules (join, drain, leave, reap), the pools file, and start-up refusals, with
the real ``kubernetes`` client against the stand-in API server (``toolmesh_local.kube_api``).

The multi-host rehearsal under load is tests/cluster/test_rehearsal.py.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from tests.faults.support import wait_until
from toolmesh_gateway.config import GatewaySettings
from toolmesh_gateway.discovery import EndpointDiscoveryError, slice_targets
from toolmesh_gateway.endpoints import EndpointPool, Target
from toolmesh_gateway.errors import GatewayError
from toolmesh_gateway.pools import PoolSpec, load_pools, parse_pools
from toolmesh_gateway.server import Gateway, start_gateway
from toolmesh_local.kube_api import FakeKubernetesAPI, kubeconfig
from toolmesh_local.triton import free_port
from toolmesh_models.paths import FUNCTIONS_DIR

NAMESPACE = "toolmesh-test"


def endpoint(address: str, pod: str = "", **conditions: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"addresses": [address], "conditions": conditions}
    if pod:
        entry["targetRef"] = {"kind": "Pod", "name": pod, "namespace": NAMESPACE}
    return entry


def endpoint_slice(
    name: str, service: str, endpoints: list[dict[str, Any]], port: int = 8001, **extra: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8000}, {"name": "grpc", "port": port}],
        "endpoints": endpoints,
        **extra,
    }


# ---- reading slices ---------------------------------------------------------------------


def test_a_slice_gives_each_endpoints_address_on_the_named_port_and_its_state() -> None:
    item = endpoint_slice(
        "s",
        "triton-a",
        [
            endpoint("10.0.0.1", "pod-a", ready=True, serving=True, terminating=False),
            endpoint("10.0.0.2", "pod-b"),  # conditions unset: ready, says the API
            endpoint("10.0.0.3", "pod-c", ready=False, serving=True, terminating=True),
            endpoint("10.0.0.4", "pod-d", ready=False),  # failing its readiness probe
            {"addresses": [], "conditions": {"ready": True}},  # no address: skipped
        ],
        port=9001,
    )
    assert slice_targets(item, "grpc") == {
        "10.0.0.1:9001": Target("pod-a", ready=True),
        "10.0.0.2:9001": Target("pod-b", ready=True),
        "10.0.0.3:9001": Target("pod-c", ready=False),
        "10.0.0.4:9001": Target("pod-d", ready=False),
    }


def test_ipv6_addresses_are_bracketed_and_a_slice_without_the_port_gives_nothing() -> None:
    item = endpoint_slice("s", "t", [endpoint("fd00::5", "pod")], addressType="IPv6")
    assert slice_targets(item, "grpc") == {"[fd00::5]:8001": Target("pod", ready=True)}
    assert slice_targets(item, "metrics") == {}
    # a terminating endpoint is never ready, whatever "ready" says
    item = endpoint_slice("s", "t", [endpoint("10.0.0.9", ready=True, terminating=True)])
    assert slice_targets(item, "grpc") == {"10.0.0.9:8001": Target("", ready=False)}


# ---- the pools file ---------------------------------------------------------------------


def test_pools_name_their_service_and_models(tmp_path: Path) -> None:
    path = tmp_path / "placement.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "defaults": {"count": 1},
                "models": {"find": {"count": 2}},
                "pools": {
                    "big": {"service": "triton-big-gpus", "models": {"caption": {"count": 2}}},
                    "small": {"models": {"find": {}, "greyscale": None}},
                },
            }
        )
    )
    assert load_pools(path) == [
        PoolSpec("big", "triton-big-gpus", frozenset({"caption"})),
        PoolSpec("small", "triton-small", frozenset({"find", "greyscale"})),
    ]


@pytest.mark.parametrize(
    ("pools", "message"),
    [
        (None, "needs a 'pools:' section"),
        ({}, "needs a 'pools:' section"),
        ({"Big": {"models": {"find": {}}}}, r"pools\.Big: a pool name must be a DNS label"),
        ({"a": {"service": "x_y", "models": {"find": {}}}}, r"pools\.a\.service"),
        ({"a": {"models": {}}}, r"pools\.a\.models: expected a non-empty mapping"),
        ({"a": ["find"]}, r"pools\.a: expected a mapping"),
        (
            {"a": {"models": {"find": {}}}, "b": {"service": "triton-a", "models": {"x": {}}}},
            r"pools\.b\.service: 'triton-a' is also pool 'a'",
        ),
    ],
)
def test_malformed_pools_are_refused_naming_the_field(pools: object, message: str) -> None:
    document = {"models": {}} if pools is None else {"pools": pools}
    with pytest.raises(ValueError, match=message):
        parse_pools(document, source="p.yaml")


def test_discovery_needs_a_placement_file_and_a_known_mode() -> None:
    with pytest.raises(ValueError, match="TOOLMESH_PLACEMENT_FILE"):
        GatewaySettings(functions_dir=FUNCTIONS_DIR, discovery="kubernetes")
    with pytest.raises(ValueError, match="TOOLMESH_DISCOVERY must be one of static, kubernetes"):
        GatewaySettings(functions_dir=FUNCTIONS_DIR, discovery="consul")


# ---- the pool's membership --------------------------------------------------------------


async def test_members_join_drain_and_leave_once_idle() -> None:
    pool = EndpointPool.for_pools({"a": frozenset({"find"})}, check_timeout_s=0.2)
    try:
        first, second = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
        pool.reconcile("a", {first: Target("p1"), second: Target("p2")})
        assert [(e.url, e.config.pod, e.config.pool) for e in pool.endpoints] == [
            (first, "p1", "a"),
            (second, "p2", "a"),
        ]
        one, two = pool.endpoints
        one.healthy = two.healthy = True  # as if their checks had passed
        one.models = two.models = frozenset({"find"})
        assert {pool.pick("find").url for _ in range(4)} == {first, second}

        # terminating: no new calls, still listed
        pool.reconcile("a", {first: Target("p1", ready=False), second: Target("p2")})
        assert one.draining and not two.draining
        assert {pool.pick("find").url for _ in range(4)} == {second}
        # ready again (its readiness probe passes again): back in rotation
        pool.reconcile("a", {first: Target("p1"), second: Target("p2")})
        assert not one.draining

        # gone while a call is in flight: kept (draining) until the call ends, then closed
        with one.track():
            pool.reconcile("a", {second: Target("p2")})
            assert one in pool.endpoints and one.draining and one.removed
            await pool.check_all()
            assert one in pool.endpoints
        await pool.check_all()
        assert pool.endpoints == [two]

        # a pod first seen not ready is not added; another pool's members are untouched
        pool.reconcile("a", {second: Target("p2"), first: Target("p1", ready=False)})
        assert pool.endpoints == [two]
        pool.reconcile("b", {})
        assert pool.endpoints == [two]
    finally:
        await pool.aclose()


async def test_a_pool_without_a_ready_pod_is_named_in_the_error() -> None:
    pool = EndpointPool.for_pools({"small": frozenset({"find"}), "big": frozenset({"caption"})})
    try:
        with pytest.raises(GatewayError) as raised:
            pool.pick("find")
        assert raised.value.code == grpc.StatusCode.UNAVAILABLE
        assert "pool small, none with a ready pod" in raised.value.message
        with pytest.raises(GatewayError, match="no pool loads it"):
            pool.pick("rotate")
    finally:
        await pool.aclose()


# ---- the gateway with the stand-in API --------------------------------------------------


@pytest.fixture
def api() -> Iterator[FakeKubernetesAPI]:
    with FakeKubernetesAPI(NAMESPACE) as server:
        yield server


@pytest.fixture
def cluster_env(api: FakeKubernetesAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A gateway's environment in a cluster whose one pool, "small", serves find and greyscale."""
    config = tmp_path / "kubeconfig"
    config.write_text(kubeconfig(api, namespace=NAMESPACE))
    functions = tmp_path / "functions"
    functions.mkdir()
    for name in ("find", "greyscale"):
        (functions / f"{name}.yaml").write_bytes((FUNCTIONS_DIR / f"{name}.yaml").read_bytes())
    placement = tmp_path / "placement.yaml"
    placement.write_text(
        yaml.safe_dump({"pools": {"small": {"models": {"find": {}, "greyscale": {}}}}})
    )
    monkeypatch.setenv("KUBECONFIG", str(config))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("TOOLMESH_DISCOVERY", "kubernetes")
    monkeypatch.setenv("TOOLMESH_PLACEMENT_FILE", str(placement))
    monkeypatch.setenv("TOOLMESH_NAMESPACE", NAMESPACE)
    monkeypatch.setenv("TOOLMESH_FUNCTIONS_DIR", str(functions))
    return placement


def urls(gateway: Gateway) -> set[str]:
    return {e.url for e in gateway.pool.endpoints}


@pytest.fixture
async def gateway(api: FakeKubernetesAPI, cluster_env: Path) -> AsyncIterator[Gateway]:
    # nothing listens on these ports: membership is what is under test here
    api.apply(endpoint_slice("triton-small-x", "triton-small", [endpoint("127.0.0.1", "p0")]))
    api.apply(endpoint_slice("other-x", "other", [endpoint("127.0.0.9", "q0")]))
    running = await start_gateway(GatewaySettings.from_env(address="127.0.0.1:0"))
    try:
        yield running
    finally:
        await running.stop(0)


async def test_the_gateway_follows_the_slices_of_its_pools_service(
    api: FakeKubernetesAPI, gateway: Gateway
) -> None:
    assert urls(gateway) == {"127.0.0.1:8001"}  # the other Service's slice is not read
    requests = [q for _, path, q, _ in api.requests if path.endswith("/endpointslices")]
    assert requests and all(
        q["labelSelector"] == "kubernetes.io/service-name=triton-small" for q in requests
    )
    api.apply(endpoint_slice("triton-small-y", "triton-small", [endpoint("127.0.0.2", "p1")]))
    await wait_until(lambda: urls(gateway) == {"127.0.0.1:8001", "127.0.0.2:8001"}, "p1 joined")
    api.delete("triton-small-x", kind="EndpointSlice")
    await wait_until(lambda: urls(gateway) == {"127.0.0.2:8001"}, "p0 gone with its slice")


async def test_an_expired_slice_watch_lists_again(api: FakeKubernetesAPI, gateway: Gateway) -> None:
    await wait_until(lambda: api.watch_count == 1, "the gateway watching its pool's slices")
    # the slice changes while the gateway's resourceVersion falls out of the history...
    api.apply_quietly(
        endpoint_slice("triton-small-x", "triton-small", [endpoint("127.0.0.3", "p2")])
    )
    api.end_watches()  # ...so resuming gets 410 Gone, and the gateway lists again
    await wait_until(lambda: urls(gateway) == {"127.0.0.3:8001"}, "the relisted slice")


async def test_a_function_no_pool_serves_stops_the_start(
    api: FakeKubernetesAPI, cluster_env: Path
) -> None:
    cluster_env.write_text(yaml.safe_dump({"pools": {"small": {"models": {"find": {}}}}}))
    with pytest.raises(ValueError, match=r"no Triton pool serves: greyscale \(model 'greyscale'\)"):
        await start_gateway(GatewaySettings.from_env(address="127.0.0.1:0"))
    watches = [t.name for t in threading.enumerate() if t.name.startswith("watch ")]
    assert not watches, f"the refused gateway left watches behind: {watches}"


async def test_a_gateway_that_cannot_list_its_pools_does_not_start(
    api: FakeKubernetesAPI, cluster_env: Path
) -> None:
    api.refuse_with = 403
    with pytest.raises(EndpointDiscoveryError, match=r"pool 'small' \(service 'triton-small'.*403"):
        await start_gateway(GatewaySettings.from_env(address="127.0.0.1:0"))
