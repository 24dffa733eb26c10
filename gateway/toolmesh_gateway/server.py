"""Assembles the gateway: servicers, health, reflection, limits, graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from toolmesh.v1 import functions_pb2, functions_pb2_grpc, registry_pb2, registry_pb2_grpc
from toolmesh_gateway.config import GatewaySettings
from toolmesh_gateway.registry import Registry, load_registry
from toolmesh_gateway.service import FunctionsService, RegistryService
from toolmesh_gateway.triton import TritonBackend

__all__ = ["Gateway", "serve", "start_gateway"]

log = logging.getLogger(__name__)

FUNCTIONS_SERVICE = functions_pb2.DESCRIPTOR.services_by_name["Functions"].full_name
REGISTRY_SERVICE = registry_pb2.DESCRIPTOR.services_by_name["Registry"].full_name


@dataclass
class Gateway:
    """A running gateway: its server, bound port and the tasks it owns."""

    server: grpc.aio.Server
    port: int
    backend: TritonBackend
    health: health.aio.HealthServicer
    watcher: asyncio.Task[None]

    async def stop(self, grace: float | None = None) -> None:
        self.watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.watcher
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        await self.backend.aclose()


async def _watch_backend(
    backend: TritonBackend, servicer: health.aio.HealthServicer, interval: float
) -> None:
    """Report ``toolmesh.v1.Functions`` as NOT_SERVING while Triton is not ready."""
    last: int | None = None
    while True:
        ready = await backend.is_ready()
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if ready
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        if status != last:
            log.info("model server %s is %s", backend.url, "ready" if ready else "NOT ready")
            await servicer.set(FUNCTIONS_SERVICE, status)
            last = status
        await asyncio.sleep(interval)


async def start_gateway(settings: GatewaySettings, registry: Registry | None = None) -> Gateway:
    """Start serving on ``settings.address`` and return at once (port 0 picks a free port)."""
    registry = registry if registry is not None else load_registry(settings.functions_dir)
    backend = TritonBackend(settings.triton_url)
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.so_reuseport", 0),
        ]
    )
    registry_pb2_grpc.add_RegistryServicer_to_server(RegistryService(registry), server)
    functions_pb2_grpc.add_FunctionsServicer_to_server(
        FunctionsService(
            registry,
            backend,
            max_image_pixels=settings.max_image_pixels,
            default_timeout_s=settings.default_timeout_s,
        ),
        server,
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [
            FUNCTIONS_SERVICE,
            REGISTRY_SERVICE,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    port = server.add_insecure_port(settings.address)
    if port == 0:
        raise OSError(f"cannot listen on {settings.address}")
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    await health_servicer.set(REGISTRY_SERVICE, health_pb2.HealthCheckResponse.SERVING)
    watcher = asyncio.create_task(
        _watch_backend(backend, health_servicer, settings.health_interval_s)
    )
    log.info(
        "toolmesh gateway listening on %s (port %d), %d functions, model server %s",
        settings.address,
        port,
        len(registry),
        settings.triton_url,
    )
    return Gateway(server, port, backend, health_servicer, watcher)


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
