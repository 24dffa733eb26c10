"""Functions from the Kubernetes API, live: a real gateway (start_gateway, in-process) with
TOOLMESH_REGISTRY=kubernetes, the real ``kubernetes`` client configured from a kubeconfig,
and a local HTTP server speaking the API's list/watch protocol (toolmesh_local.kube_api)."""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from toolmesh.v1 import functions_pb2, functions_pb2_grpc, registry_pb2, registry_pb2_grpc
from toolmesh_gateway.config import GatewaySettings
from toolmesh_gateway.kube import FunctionWatchError, KubernetesFunctions, default_namespace
from toolmesh_gateway.server import Gateway, start_gateway
from toolmesh_local.kube_api import FakeKubernetesAPI, kubeconfig
from toolmesh_local.triton import free_port
from toolmesh_models.paths import FUNCTIONS_DIR

NAMESPACE = "toolmesh-test"


def document(name: str) -> dict[str, Any]:
    return yaml.safe_load((FUNCTIONS_DIR / f"{name}.yaml").read_text(encoding="utf-8"))


def malformed(name: str) -> dict[str, Any]:
    """A Function the CRD's schema accepts but the gateway refuses (required names no parameter)."""
    broken = document("greyscale")
    broken["metadata"]["name"] = name
    broken["spec"]["parametersSchema"]["required"] = ["image", "no_such_parameter"]
    return broken


@pytest.fixture
def api() -> Iterator[FakeKubernetesAPI]:
    server = FakeKubernetesAPI(NAMESPACE).start()
    server.apply(document("find"))
    server.apply(document("greyscale"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def kube_env(api: FakeKubernetesAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment of a gateway outside a cluster, pointed at ``api`` by a kubeconfig."""
    config = tmp_path / "kubeconfig"
    config.write_text(kubeconfig(api, namespace="from-context"))
    monkeypatch.setenv("KUBECONFIG", str(config))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("TOOLMESH_REGISTRY", "kubernetes")
    monkeypatch.setenv("TOOLMESH_NAMESPACE", NAMESPACE)


def settings() -> GatewaySettings:
    # Triton is deliberately absent: the registry is served without it, and a known
    # function's call fails later than an unknown one's.
    return GatewaySettings.from_env(address="127.0.0.1:0", triton_url=f"127.0.0.1:{free_port()}")


@pytest.fixture
async def gateway(kube_env: None) -> AsyncIterator[Gateway]:
    running = await start_gateway(settings())
    try:
        yield running
    finally:
        await running.stop(0)


@pytest.fixture
async def stubs(
    gateway: Gateway,
) -> AsyncIterator[tuple[registry_pb2_grpc.RegistryStub, functions_pb2_grpc.FunctionsStub]]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        yield registry_pb2_grpc.RegistryStub(channel), functions_pb2_grpc.FunctionsStub(channel)


async def listed(registry: registry_pb2_grpc.RegistryStub) -> set[str]:
    response = await registry.ListFunctions(registry_pb2.ListFunctionsRequest(), timeout=5)
    return {f.name for f in response.functions}


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll until ``check`` holds; the bound only turns a hang into a failure."""
    for _ in range(400):
        if await check():
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"never happened: {what}")


async def call_status(functions: functions_pb2_grpc.FunctionsStub, name: str) -> grpc.StatusCode:
    try:
        await functions.Call(functions_pb2.CallRequest(function=name), timeout=5)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def test_the_registry_follows_added_modified_and_deleted_functions(
    api: FakeKubernetesAPI, gateway: Gateway, stubs
) -> None:
    registry, functions = stubs
    assert await listed(registry) == {"find", "greyscale"}
    assert gateway.functions is not None

    # added (a dashed resource name defines an underscored function)
    api.apply(document("color_depth"))
    await eventually(lambda: _has(registry, "color_depth"), "color_depth listed")
    added = await registry.GetFunction(registry_pb2.GetFunctionRequest(name="color_depth"))
    assert added.model == "color_depth"
    # known now: the call gets past the lookup and fails on its missing arguments
    assert await call_status(functions, "color_depth") == grpc.StatusCode.INVALID_ARGUMENT

    # modified
    revised = document("greyscale")
    revised["spec"]["documentation"] += "\nRevised in the cluster."
    api.apply(revised)

    async def documentation_revised() -> bool:
        got = await registry.GetFunction(registry_pb2.GetFunctionRequest(name="greyscale"))
        return got.documentation.endswith("Revised in the cluster.")

    await eventually(documentation_revised, "greyscale's new documentation served")

    # deleted
    api.delete("find")
    await eventually(lambda: _lacks(registry, "find"), "find no longer listed")
    assert await listed(registry) == {"color_depth", "greyscale"}
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await registry.GetFunction(registry_pb2.GetFunctionRequest(name="find"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert await call_status(functions, "find") == grpc.StatusCode.NOT_FOUND

    # the protocol: one list, then a watch resumed from the list's resourceVersion
    lists = [q for _, _, q, _ in api.requests if "watch" not in q]
    watches = [q for _, _, q, _ in api.requests if "watch" in q]
    assert len(lists) == 1 and watches
    assert watches[0]["resourceVersion"] == "102"  # find and greyscale were 101 and 102
    assert all(auth == f"Bearer {api.token}" for *_, auth in api.requests)


async def _has(registry: registry_pb2_grpc.RegistryStub, name: str) -> bool:
    return name in await listed(registry)


async def _lacks(registry: registry_pb2_grpc.RegistryStub, name: str) -> bool:
    return name not in await listed(registry)


async def test_a_malformed_function_is_logged_and_ignored(
    api: FakeKubernetesAPI, gateway: Gateway, stubs, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="toolmesh_gateway.kube")
    registry, _ = stubs
    before = await registry.GetFunction(registry_pb2.GetFunctionRequest(name="greyscale"))

    api.apply(malformed("broken"))  # a new Function the gateway refuses
    api.apply(malformed("greyscale"))  # a refused change to a served one
    api.send_raw("this line is not JSON")  # a garbled event
    api.apply(document("rotate"))  # and the watch goes on

    await eventually(lambda: _has(registry, "rotate"), "rotate listed after the bad events")
    assert await listed(registry) == {"find", "greyscale", "rotate"}
    after = await registry.GetFunction(registry_pb2.GetFunctionRequest(name="greyscale"))
    assert after == before, "the last good greyscale keeps serving"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("broken" in w and "no_such_parameter" in w for w in warnings), warnings
    assert any("greyscale" in w and "previous version keeps serving" in w for w in warnings)
    assert any("malformed watch event" in w for w in warnings)


async def test_an_expired_watch_lists_again(
    api: FakeKubernetesAPI, gateway: Gateway, stubs
) -> None:
    registry, _ = stubs
    await eventually(lambda: _watching(api), "the gateway watching")
    # changes made while the gateway's resourceVersion fell out of the history...
    api.apply_quietly(document("rotate"), delete="find")
    api.end_watches()  # ...then its watch ends: resuming gets 410 Gone, so it lists again
    await eventually(lambda: _is(registry, {"greyscale", "rotate"}), "the relisted registry")
    assert sum("watch" not in q for _, _, q, _ in api.requests) == 2


async def _watching(api: FakeKubernetesAPI) -> bool:
    return api.watch_count > 0


async def _is(registry: registry_pb2_grpc.RegistryStub, names: set[str]) -> bool:
    return await listed(registry) == names


async def test_the_gateway_does_not_start_without_its_functions(
    api: FakeKubernetesAPI, kube_env: None
) -> None:
    api.refuse_with = 403
    with pytest.raises(FunctionWatchError, match=rf"namespace '{NAMESPACE}'.*403"):
        await start_gateway(settings())


async def test_stopping_the_gateway_ends_the_watch(api: FakeKubernetesAPI, kube_env: None) -> None:
    running = await start_gateway(settings())
    assert running.functions is not None
    await eventually(lambda: _watching(api), "the gateway watching")
    assert running.functions.watching
    await running.stop(0)
    assert not running.functions.watching


async def test_watching_a_namespace_directly(api: FakeKubernetesAPI, kube_env: None) -> None:
    functions = KubernetesFunctions(NAMESPACE)
    holder = await functions.start()
    try:
        assert holder.names() == ["find", "greyscale"]
        api.apply(copy.deepcopy(document("resize")))

        async def resized() -> bool:
            return "resize" in holder.names()

        await eventually(resized, "resize in the registry")
    finally:
        await functions.aclose()


def test_namespace_defaults_to_the_kubeconfig_context(kube_env: None) -> None:
    assert default_namespace() == "from-context"


def test_registry_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLMESH_REGISTRY", "etcd")
    with pytest.raises(ValueError, match="TOOLMESH_REGISTRY"):
        GatewaySettings.from_env()
