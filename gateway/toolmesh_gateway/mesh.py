"""``toolmesh.v1.Mesh``: the endpoints behind the gateway, for `toolmesh status` and operators."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from toolmesh.v1 import mesh_pb2, mesh_pb2_grpc
from toolmesh_gateway.endpoints import EndpointPool

__all__ = ["MeshService"]


class MeshService(mesh_pb2_grpc.MeshServicer):
    """Reports health, models and call counts per Triton endpoint; holds no state of its own."""

    def __init__(self, pool: EndpointPool, version: str, functions: Callable[[], int]) -> None:
        self._pool = pool
        self._version = version
        self._functions = functions

    async def Status(
        self, request: mesh_pb2.StatusRequest, context: grpc.aio.ServicerContext
    ) -> mesh_pb2.StatusResponse:
        return mesh_pb2.StatusResponse(
            version=self._version,
            functions=self._functions(),
            endpoints=[
                mesh_pb2.EndpointStatus(
                    url=e.url,
                    healthy=e.healthy,
                    models=sorted(e.models),
                    in_flight=e.in_flight,
                    calls=e.calls,
                    failures=e.failures,
                    last_error=e.last_error,
                    pool=e.config.pool,
                    pod=e.config.pod,
                    draining=e.draining,
                )
                for e in self._pool.endpoints
            ],
        )
