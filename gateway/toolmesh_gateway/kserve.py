"""The gateway as a KServe v2 endpoint: ``inference.GRPCInferenceService`` in front of the pool.

``tritonclient`` and ``perf_analyzer`` target the gateway exactly as they
would a Triton server. ``ModelInfer`` is forwarded as raw bytes: the request
is parsed only to read the model name for routing, and neither the request
nor the response is re-encoded, so this path stays close to Triton's speed.
Other RPCs are answered from the pool's state or forwarded to an endpoint
that serves the model; statistics and the repository index are merged over
endpoints.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
from opentelemetry import propagate
from tritonclient.grpc import service_pb2

from toolmesh_gateway.endpoints import Endpoint, EndpointPool
from toolmesh_gateway.errors import GatewayError

__all__ = ["SERVICE_NAME", "kserve_handler"]

log = logging.getLogger(__name__)

SERVICE_NAME = "inference.GRPCInferenceService"
MODEL_INFER = f"/{SERVICE_NAME}/ModelInfer"
#: Extensions this proxy implements (shared memory, repository control, trace and log settings are node-local).
EXTENSIONS = (
    "classification",
    "model_configuration",
    "binary_tensor_data",
    "parameters",
    "statistics",
)

_STAT_FIELDS = [f.name for f in service_pb2.InferStatistics.DESCRIPTOR.fields]


# Credentials are for the gateway; Triton never sees (or logs) a caller's token.
_NOT_FORWARDED = ("user-agent", "content-type", "traceparent", "tracestate", "authorization")


def _forwarded_metadata(context: grpc.aio.ServicerContext) -> tuple[tuple[str, str], ...]:
    """Caller metadata worth passing on, minus transport headers; trace context is the gateway's.

    The caller's ``traceparent`` is replaced by the gateway's current span, so
    Triton's spans hang under the gateway's span for this call.
    """
    forwarded = [
        (key, value)
        for key, value in (context.invocation_metadata() or ())
        if not key.startswith((":", "grpc-"))
        and key not in _NOT_FORWARDED
        and isinstance(value, str)
    ]
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return (*forwarded, *carrier.items())


async def _abort(context: grpc.aio.ServicerContext, exc: GatewayError) -> None:
    await context.abort(exc.code, exc.message)


class KServeProxy:
    """Implements the RPCs; ``kserve_handler`` binds them to the wire."""

    def __init__(self, pool: EndpointPool, version: str) -> None:
        self.pool = pool
        self.version = version
        self._raw_infer: dict[int, Callable[..., Any]] = {}

    def _raw(self, endpoint: Endpoint) -> Callable[..., Any]:
        call = self._raw_infer.get(id(endpoint))
        if call is None:
            call = endpoint.channel.unary_unary(MODEL_INFER)  # bytes in, bytes out
            self._raw_infer[id(endpoint)] = call
        return call

    async def model_infer(self, raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        try:
            model = service_pb2.ModelInferRequest.FromString(raw).model_name
        except Exception:  # protobuf raises DecodeError and friends
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "malformed ModelInferRequest")
            raise
        metadata = _forwarded_metadata(context)
        failed: Endpoint | None = None
        for attempt in (1, 2):
            try:
                endpoint = self.pool.pick(model, exclude=failed)
            except GatewayError as exc:
                await _abort(context, exc)
                raise
            try:
                with endpoint.track():
                    response: bytes = await self._raw(endpoint)(
                        raw, timeout=context.time_remaining(), metadata=metadata
                    )
                    return response
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.UNAVAILABLE and attempt == 1:
                    endpoint.eject(f"UNAVAILABLE: {exc.details()}")
                    failed = endpoint
                    continue
                await context.abort(exc.code(), exc.details() or "")
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _forward(
        self, model: str, method: str, request: Any, context: grpc.aio.ServicerContext
    ) -> Any:
        try:
            endpoint = self.pool.pick(model)
        except GatewayError as exc:
            await _abort(context, exc)
            raise
        try:
            return await getattr(endpoint.stub, method)(
                request, timeout=context.time_remaining() or 10.0
            )
        except grpc.aio.AioRpcError as exc:
            await context.abort(exc.code(), exc.details() or "")
            raise

    async def server_live(
        self, request: service_pb2.ServerLiveRequest, context: grpc.aio.ServicerContext
    ) -> service_pb2.ServerLiveResponse:
        return service_pb2.ServerLiveResponse(live=True)

    async def server_ready(
        self, request: service_pb2.ServerReadyRequest, context: grpc.aio.ServicerContext
    ) -> service_pb2.ServerReadyResponse:
        return service_pb2.ServerReadyResponse(ready=self.pool.any_healthy)

    async def server_metadata(
        self, request: service_pb2.ServerMetadataRequest, context: grpc.aio.ServicerContext
    ) -> service_pb2.ServerMetadataResponse:
        return service_pb2.ServerMetadataResponse(
            name="toolmesh-gateway", version=self.version, extensions=list(EXTENSIONS)
        )

    async def model_ready(
        self, request: service_pb2.ModelReadyRequest, context: grpc.aio.ServicerContext
    ) -> service_pb2.ModelReadyResponse:
        ready = any(e.serves(request.name) for e in self.pool.endpoints)
        return service_pb2.ModelReadyResponse(ready=ready)

    async def model_metadata(
        self, request: service_pb2.ModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> service_pb2.ModelMetadataResponse:
        return await self._forward(request.name, "ModelMetadata", request, context)

    async def model_config(
        self, request: service_pb2.ModelConfigRequest, context: grpc.aio.ServicerContext
    ) -> service_pb2.ModelConfigResponse:
        return await self._forward(request.name, "ModelConfig", request, context)

    async def model_statistics(
        self, request: service_pb2.ModelStatisticsRequest, context: grpc.aio.ServicerContext
    ) -> service_pb2.ModelStatisticsResponse:
        endpoints = [
            e
            for e in self.pool.endpoints
            if e.healthy and (not request.name or request.name in e.models)
        ]
        replies = []
        for endpoint in endpoints:
            try:
                replies.append(await endpoint.stub.ModelStatistics(request, timeout=10.0))
            except grpc.aio.AioRpcError as exc:
                log.info("statistics from %s failed: %s", endpoint.url, exc.details())
        return merge_statistics(replies)

    async def repository_index(
        self, request: service_pb2.RepositoryIndexRequest, context: grpc.aio.ServicerContext
    ) -> service_pb2.RepositoryIndexResponse:
        seen: dict[tuple[str, str], service_pb2.RepositoryIndexResponse.ModelIndex] = {}
        for endpoint in (e for e in self.pool.endpoints if e.healthy):
            try:
                reply = await endpoint.stub.RepositoryIndex(request, timeout=10.0)
            except grpc.aio.AioRpcError:
                continue
            for model in reply.models:
                seen.setdefault((model.name, model.version), model)
        return service_pb2.RepositoryIndexResponse(models=[seen[k] for k in sorted(seen)])


def merge_statistics(
    replies: Sequence[service_pb2.ModelStatisticsResponse],
) -> service_pb2.ModelStatisticsResponse:
    """Sum per-model counters over endpoints (a model served twice counts every inference once)."""
    merged: dict[tuple[str, str], service_pb2.ModelStatistics] = {}
    for reply in replies:
        for stats in reply.model_stats:
            key = (stats.name, stats.version)
            into = merged.get(key)
            if into is None:
                into = merged[key] = service_pb2.ModelStatistics(
                    name=stats.name, version=stats.version
                )
            into.last_inference = max(into.last_inference, stats.last_inference)
            into.inference_count += stats.inference_count
            into.execution_count += stats.execution_count
            for name in _STAT_FIELDS:
                src, dst = getattr(stats.inference_stats, name), getattr(into.inference_stats, name)
                dst.count += src.count
                dst.ns += src.ns
    return service_pb2.ModelStatisticsResponse(model_stats=[merged[k] for k in sorted(merged)])


def _typed(
    fn: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]], request_type: Any
) -> grpc.RpcMethodHandler:
    return grpc.unary_unary_rpc_method_handler(
        fn,
        request_deserializer=request_type.FromString,
        response_serializer=lambda message: message.SerializeToString(),
    )


def kserve_handler(pool: EndpointPool, version: str) -> grpc.GenericRpcHandler:
    """The ``inference.GRPCInferenceService`` handler to add to the gateway's server."""
    proxy = KServeProxy(pool, version)
    s = service_pb2
    return grpc.method_handlers_generic_handler(
        SERVICE_NAME,
        {
            "ModelInfer": grpc.unary_unary_rpc_method_handler(proxy.model_infer),  # raw bytes
            "ServerLive": _typed(proxy.server_live, s.ServerLiveRequest),
            "ServerReady": _typed(proxy.server_ready, s.ServerReadyRequest),
            "ServerMetadata": _typed(proxy.server_metadata, s.ServerMetadataRequest),
            "ModelReady": _typed(proxy.model_ready, s.ModelReadyRequest),
            "ModelMetadata": _typed(proxy.model_metadata, s.ModelMetadataRequest),
            "ModelConfig": _typed(proxy.model_config, s.ModelConfigRequest),
            "ModelStatistics": _typed(proxy.model_statistics, s.ModelStatisticsRequest),
            "RepositoryIndex": _typed(proxy.repository_index, s.RepositoryIndexRequest),
        },
    )
