"""The gateway's gRPC servicers: the registry and function calls."""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from opentelemetry import propagate, trace

from toolmesh.v1 import functions_pb2, functions_pb2_grpc, registry_pb2, registry_pb2_grpc
from toolmesh_gateway.codec import decode_result, encode_arguments
from toolmesh_gateway.errors import GatewayError
from toolmesh_gateway.pipeline import CallPipeline, lookup_function
from toolmesh_gateway.registry import Registry, RegistryHolder, as_holder
from toolmesh_gateway.triton import TritonRouter

__all__ = ["FunctionsService", "RegistryService"]

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Handler = Callable[[Any, Req, grpc.aio.ServicerContext], Awaitable[Resp]]


def handles_errors(method: Handler[Req, Resp]) -> Handler[Req, Resp]:
    """Turn every failure of a handler into a precise status; nothing escapes as UNKNOWN.

    ``GatewayError`` carries its own code and a message meant for the caller.
    Anything else is a bug: it is logged with an id, and the caller gets
    INTERNAL with that id (never the exception text, which may hold internals).
    """

    @functools.wraps(method)
    async def wrapper(self: Any, request: Req, context: grpc.aio.ServicerContext) -> Resp:
        try:
            return await method(self, request, context)
        except GatewayError as exc:
            await context.abort(exc.code, exc.message)
        except Exception:
            incident = uuid.uuid4().hex[:12]
            log.exception("unexpected error in %s (incident %s)", method.__name__, incident)
            await context.abort(
                grpc.StatusCode.INTERNAL, f"internal gateway error (incident {incident})"
            )
        raise AssertionError("unreachable: context.abort raises")  # pragma: no cover

    return wrapper


class RegistryService(registry_pb2_grpc.RegistryServicer):
    """Serves the Function documents of the current registry (it may be replaced live)."""

    def __init__(
        self,
        registry: Registry | RegistryHolder,
        availability: Callable[[str], tuple[bool, str]] | None = None,
    ) -> None:
        self._registry = as_holder(registry)
        self._listing: tuple[Registry, registry_pb2.ListFunctionsResponse] | None = None
        #: model name → (available, reason); from the endpoints' repository indexes.
        self._availability = availability

    def _with_availability(self, function: registry_pb2.Function) -> registry_pb2.Function:
        """A copy of ``function`` saying whether its model is loaded somewhere, and if not why."""
        if self._availability is None:
            return function
        available, reason = self._availability(function.model)
        copy = registry_pb2.Function()
        copy.CopyFrom(function)
        copy.available = available
        copy.unavailable_reason = reason
        return copy

    @handles_errors
    async def ListFunctions(
        self, request: registry_pb2.ListFunctionsRequest, context: grpc.aio.ServicerContext
    ) -> registry_pb2.ListFunctionsResponse:
        current = self._registry.current
        if self._listing is None or self._listing[0] is not current:  # built once per registry
            listing = registry_pb2.ListFunctionsResponse(functions=[f.to_proto() for f in current])
            self._listing = (current, listing)
        listing = self._listing[1]
        if self._availability is None:
            return listing
        return registry_pb2.ListFunctionsResponse(
            functions=[self._with_availability(f) for f in listing.functions]
        )

    @handles_errors
    async def GetFunction(
        self, request: registry_pb2.GetFunctionRequest, context: grpc.aio.ServicerContext
    ) -> registry_pb2.Function:
        return self._with_availability(lookup_function(self._registry, request.name).to_proto())


class FunctionsService(functions_pb2_grpc.FunctionsServicer):
    """Validates a call, runs it on Triton, validates and returns the result."""

    def __init__(
        self,
        registry: Registry | RegistryHolder,
        backend: TritonRouter,
        *,
        max_image_pixels: int,
        default_timeout_s: float,
    ) -> None:
        self._pipeline = CallPipeline(registry, max_image_pixels=max_image_pixels)
        self._backend = backend
        self._default_timeout_s = default_timeout_s

    @handles_errors
    async def Call(
        self, request: functions_pb2.CallRequest, context: grpc.aio.ServicerContext
    ) -> functions_pb2.CallResponse:
        function = self._pipeline.function(request.function)
        trace.get_current_span().set_attribute("toolmesh.function", function.name)
        with tracer.start_as_current_span("toolmesh.validate"):
            arguments = self._pipeline.arguments(function, request)
        model = await self._backend.model_info(function.model)
        inputs = encode_arguments(function, model, arguments)
        remaining = context.time_remaining()
        started = time.perf_counter_ns()
        with tracer.start_as_current_span(
            "triton.infer", kind=trace.SpanKind.CLIENT, attributes={"toolmesh.model": model.name}
        ):
            headers: dict[str, str] = {}
            propagate.inject(headers)  # Triton joins the trace from these gRPC headers
            result = await self._backend.infer(
                function.model,
                inputs,
                version=function.model_version,
                timeout=remaining if remaining is not None else self._default_timeout_s,
                headers=headers,
            )
        backend_micros = (time.perf_counter_ns() - started) // 1000
        value = decode_result(function, model, result)
        return self._pipeline.response(function, value, backend_micros=backend_micros)
