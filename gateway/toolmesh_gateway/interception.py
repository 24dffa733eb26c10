"""Small tools for server interceptors: read metadata, refuse a call, run a check first.

Interceptors here see a call before any servicer does; they refuse it by
returning a handler of the same shape (unary or streaming) that only aborts.
That handler takes the request as raw bytes, so a refused caller's payload is
never parsed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any

import grpc

__all__ = ["Check", "metadata_value", "reject_handler", "replace_unary", "wrap_unary"]

#: A check run before a unary handler; it aborts the call to refuse it.
Check = Callable[[Any, grpc.aio.ServicerContext], Awaitable[None]]


def metadata_value(
    metadata: Mapping[str, str] | Iterable[tuple[str, Any]] | None, key: str
) -> str | None:
    """The first string value of ``key`` in gRPC invocation metadata."""
    if metadata is None:
        return None
    items = metadata.items() if isinstance(metadata, Mapping) else metadata
    for k, v in items:
        if k == key and isinstance(v, str):
            return v
    return None


def reject_handler(
    handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str
) -> grpc.RpcMethodHandler:
    """A handler shaped like ``handler`` that answers ``code``/``message`` and does nothing else."""

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)

    async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await context.abort(code, message)
        yield  # pragma: no cover - makes this an async generator

    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(unary)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(streaming)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(unary)
    return grpc.stream_stream_rpc_method_handler(streaming)


def wrap_unary(handler: grpc.RpcMethodHandler, check: Check) -> grpc.RpcMethodHandler:
    """``handler`` with ``check`` run on the decoded request first (unary-unary only)."""
    inner = handler.unary_unary
    if inner is None:
        return handler

    async def checked(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await check(request, context)
        return await inner(request, context)

    return replace_unary(handler, checked)


def replace_unary(
    handler: grpc.RpcMethodHandler,
    behavior: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]],
) -> grpc.RpcMethodHandler:
    """A unary-unary handler running ``behavior`` with ``handler``'s (de)serializers."""
    return grpc.unary_unary_rpc_method_handler(
        behavior,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
