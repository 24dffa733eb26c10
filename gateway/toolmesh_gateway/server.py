"""Assembles the gateway: servicers, health, reflection, limits, graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_server_interceptor

from toolmesh import __version__
from toolmesh.v1 import (
    functions_pb2,
    functions_pb2_grpc,
    mesh_pb2,
    mesh_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
)
from toolmesh_gateway.auth import AuthInterceptor, TokenStore
from toolmesh_gateway.config import GatewaySettings
from toolmesh_gateway.decoding import DecodingInterceptor
from toolmesh_gateway.endpoints import EndpointPool
from toolmesh_gateway.kserve import MODEL_INFER, kserve_handler
from toolmesh_gateway.kserve import SERVICE_NAME as KSERVE_SERVICE
from toolmesh_gateway.limits import Admission, AdmissionInterceptor
from toolmesh_gateway.mesh import MeshService
from toolmesh_gateway.metrics import GatewayMetrics
from toolmesh_gateway.registry import Registry, RegistryHolder, load_registry
from toolmesh_gateway.service import FunctionsService, RegistryService
from toolmesh_gateway.triton import TritonRouter

if TYPE_CHECKING:
    from toolmesh_gateway.discovery import KubernetesEndpoints
    from toolmesh_gateway.kube import KubernetesFunctions

__all__ = ["Gateway", "open_pool", "open_registry", "serve", "start_gateway"]

log = logging.getLogger(__name__)

FUNCTIONS_SERVICE = functions_pb2.DESCRIPTOR.services_by_name["Functions"].full_name
REGISTRY_SERVICE = registry_pb2.DESCRIPTOR.services_by_name["Registry"].full_name
MESH_SERVICE = mesh_pb2.DESCRIPTOR.services_by_name["Mesh"].full_name
CALL_METHOD = f"/{FUNCTIONS_SERVICE}/Call"
#: RPCs beyond the admission limits that gRPC still accepts: health, registry, status.
CHEAP_RPC_HEADROOM = 64


@dataclass
class Gateway:
    """A running gateway: its server, bound port and the tasks it owns."""

    server: grpc.aio.Server
    port: int
    router: TritonRouter
    health: health.aio.HealthServicer
    watcher: asyncio.Task[None]
    metrics: GatewayMetrics
    admission: Admission
    metrics_port: int | None = None
    #: The plaintext health-only listener (``health_address``), if any.
    health_server: grpc.aio.Server | None = None
    health_port: int | None = None
    #: The Kubernetes watch that keeps the registry live (``TOOLMESH_REGISTRY=kubernetes``).
    functions: KubernetesFunctions | None = None
    #: The EndpointSlice watches that keep the pools' pods live (``TOOLMESH_DISCOVERY=kubernetes``).
    discovery: KubernetesEndpoints | None = None

    @property
    def pool(self) -> EndpointPool:
        return self.router.pool

    async def stop(self, grace: float | None = None) -> None:
        if self.functions is not None:
            await self.functions.aclose()
        if self.discovery is not None:
            await self.discovery.aclose()
        self.watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.watcher
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        if self.health_server is not None:
            await self.health_server.stop(None)
        await self.router.aclose()
        self.metrics.close()


async def _report_health(
    pool: EndpointPool, servicer: health.aio.HealthServicer, interval: float
) -> None:
    """``toolmesh.v1.Functions`` is SERVING while at least one Triton endpoint is healthy."""
    last: int | None = None
    while True:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if pool.any_healthy
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        if status != last:
            for service in (FUNCTIONS_SERVICE, KSERVE_SERVICE):
                await servicer.set(service, status)
            last = status
        await asyncio.sleep(interval)


def check_coverage(registry: Registry, pool: EndpointPool) -> None:
    """Refuse to start when the endpoints declare their models and a function's model is missing."""
    declared = pool.declared_models()
    if declared is None:
        return  # discovered at run time: an unserved model is UNAVAILABLE naming it
    missing = sorted({f"{f.name} (model {f.model!r})" for f in registry if f.model not in declared})
    if missing:
        where = "Triton pool" if pool.pools else "configured Triton endpoint"
        raise ValueError(
            f"no {where} serves: {', '.join(missing)}; "
            f"{'pools' if pool.pools else 'endpoints'} declare {sorted(declared)}"
        )


async def open_pool(settings: GatewaySettings) -> tuple[EndpointPool, KubernetesEndpoints | None]:
    """The Triton endpoints ``settings.discovery`` names: configured, or each pool's pods."""
    if settings.discovery == "kubernetes":
        from toolmesh_gateway.discovery import KubernetesEndpoints  # the client only if used

        specs = settings.pools()
        pool = EndpointPool.for_pools(
            {s.name: s.models for s in specs}, check_interval_s=settings.health_interval_s
        )
        discovery = KubernetesEndpoints(pool, specs, settings.namespace)
        await discovery.start()
        return pool, discovery
    return EndpointPool.open(
        settings.endpoints(), check_interval_s=settings.health_interval_s
    ), None


async def open_registry(
    settings: GatewaySettings,
) -> tuple[Registry | RegistryHolder, KubernetesFunctions | None]:
    """The registry ``settings.registry`` names: the files, or the cluster's live Functions."""
    if settings.registry == "kubernetes":
        from toolmesh_gateway.kube import KubernetesFunctions  # imports the client only if used

        functions = KubernetesFunctions(settings.namespace)
        return await functions.start(), functions
    assert settings.functions_dir is not None  # GatewaySettings refuses files without a folder
    return load_registry(settings.functions_dir), None


async def _serve_health_only(
    address: str, servicer: health.aio.HealthServicer
) -> tuple[grpc.aio.Server, int]:
    """grpc.health.v1 alone on a plaintext port, answering from the main server's servicer.

    Kubernetes' gRPC probes cannot speak TLS; this port lets them probe a TLS
    gateway without opening anything else in plaintext.
    """
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen on {address} (health)")
    await server.start()
    return server, port


async def start_gateway(
    settings: GatewaySettings, registry: Registry | RegistryHolder | None = None
) -> Gateway:
    """Start serving on ``settings.address`` and return at once (port 0 picks a free port).

    ``registry`` defaults to the one ``settings.registry`` names (:func:`open_registry`).
    """
    # Security settings are read first: a bad file stops start-up before anything connects.
    auth = (
        AuthInterceptor(
            TokenStore.load(settings.tokens_file), open_reflection=settings.reflection == "open"
        )
        if settings.tokens_file is not None
        else None
    )
    credentials = settings.tls.credentials() if settings.tls is not None else None
    functions = None
    if registry is None:
        registry, functions = await open_registry(settings)
    try:
        pool, discovery = await open_pool(settings)
    except BaseException:
        if functions is not None:
            await functions.aclose()
        raise
    try:
        check_coverage(registry, pool)
    except ValueError:
        for watch in (functions, discovery):
            if watch is not None:
                await watch.aclose()
        await pool.aclose()
        raise
    router = TritonRouter(pool)
    limits = settings.limits
    admission = Admission(limits)
    metrics = GatewayMetrics(pool, admission)
    server = grpc.aio.server(
        # Outermost first: the trace (continues the caller's W3C traceparent) sees
        # every outcome; malformed bytes are INVALID_ARGUMENT before anyone reads them;
        # metrics count refusals too; auth refuses before admission spends a slot
        # on a stranger.
        interceptors=[
            aio_server_interceptor(),
            DecodingInterceptor(),
            metrics,
            *([auth] if auth is not None else []),
            AdmissionInterceptor(
                admission,
                (CALL_METHOD, MODEL_INFER),
                default_timeout_s=settings.default_timeout_s,
                identify=auth.identify if auth is not None else None,
            ),
        ],
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.so_reuseport", 0),
        ],
        # A hard bound on everything the server holds, whatever the method: memory
        # stays under this × max_message_bytes however large the backlog.
        maximum_concurrent_rpcs=limits.max_in_flight + limits.max_queue + CHEAP_RPC_HEADROOM,
    )
    registry_pb2_grpc.add_RegistryServicer_to_server(
        RegistryService(registry, availability=pool.availability), server
    )
    functions_pb2_grpc.add_FunctionsServicer_to_server(
        FunctionsService(
            registry,
            router,
            max_image_pixels=settings.max_image_pixels,
            default_timeout_s=settings.default_timeout_s,
        ),
        server,
    )
    mesh_pb2_grpc.add_MeshServicer_to_server(
        MeshService(pool, __version__, lambda: len(registry)), server
    )
    server.add_generic_rpc_handlers([kserve_handler(pool, __version__)])
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if settings.reflection != "off":
        reflection.enable_server_reflection(
            [
                FUNCTIONS_SERVICE,
                REGISTRY_SERVICE,
                MESH_SERVICE,
                KSERVE_SERVICE,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ],
            server,
        )
    port = (
        server.add_secure_port(settings.address, credentials)
        if credentials is not None
        else server.add_insecure_port(settings.address)
    )
    if port == 0:
        raise OSError(f"cannot listen on {settings.address}")
    pool.start()
    await pool.wait_checked(timeout=settings.health_interval_s + 3)
    await server.start()
    health_server, health_port = (
        await _serve_health_only(settings.health_address, health_servicer)
        if settings.health_address
        else (None, None)
    )
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    for service in (REGISTRY_SERVICE, MESH_SERVICE):
        await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    watcher = asyncio.create_task(
        _report_health(pool, health_servicer, min(settings.health_interval_s, 0.5))
    )
    log.info(
        "toolmesh gateway listening on %s (port %d, %s), %d functions, Triton %s",
        settings.address,
        port,
        settings.security,
        len(registry),
        ", ".join(e.url for e in pool.endpoints),
    )
    metrics_port = metrics.serve(settings.metrics_address) if settings.metrics_address else None
    return Gateway(
        server,
        port,
        router,
        health_servicer,
        watcher,
        metrics,
        admission,
        metrics_port,
        functions=functions,
        discovery=discovery,
        health_server=health_server,
        health_port=health_port,
    )


async def serve(settings: GatewaySettings) -> None:
    """Run until SIGTERM/SIGINT, then let in-flight calls finish within the grace period."""
    gateway = await start_gateway(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down (grace %.1fs)", settings.shutdown_grace_s)
    await gateway.stop(settings.shutdown_grace_s)
