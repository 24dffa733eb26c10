"""Request decoding that answers INVALID_ARGUMENT for bytes that are not the message.

grpcio parses a request before any handler or interceptor code runs, and a
parse failure there reaches the caller as UNKNOWN ("Unexpected DecodeError").
This interceptor takes parsing over for every method: grpc hands over the raw
bytes and the parse runs inside the call, where a failure becomes a precise
INVALID_ARGUMENT naming the expected message. It must be outside every
interceptor that reads requests; the ones outside it pass raw bytes through.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

__all__ = ["DecodingInterceptor"]

Deserializer = Callable[[bytes], Any]


async def _parse(data: bytes, parse: Deserializer, context: grpc.aio.ServicerContext) -> Any:
    try:
        return parse(data)
    except Exception:  # DecodeError, and whatever a custom deserializer raises
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"malformed request: the bytes are not a valid {_message_name(parse)}",
        )


async def _responses(result: Any) -> AsyncIterator[Any]:
    """A streaming behaviour's responses, whether it yields them or writes them itself.

    grpc.aio allows both: an async generator, or a coroutine that calls
    ``context.write`` (the health service's Watch does).
    """
    if hasattr(result, "__aiter__"):
        async for response in result:
            yield response
    else:
        await result


def _message_name(parse: Deserializer) -> str:
    owner = getattr(parse, "__self__", None)  # Message.FromString is a bound classmethod
    descriptor = getattr(owner, "DESCRIPTOR", None)
    return getattr(descriptor, "full_name", "request message")


class DecodingInterceptor(grpc.aio.ServerInterceptor):
    """Parses requests inside the call so a malformed one is INVALID_ARGUMENT, not UNKNOWN."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        parse: Deserializer = handler.request_deserializer
        serializer = handler.response_serializer

        if handler.unary_unary is not None or handler.unary_stream is not None:
            unary_inner = handler.unary_unary or handler.unary_stream

            async def unary_unary(data: bytes, context: grpc.aio.ServicerContext) -> Any:
                return await unary_inner(await _parse(data, parse, context), context)

            async def unary_stream(
                data: bytes, context: grpc.aio.ServicerContext
            ) -> AsyncIterator[Any]:
                request = await _parse(data, parse, context)
                async for response in _responses(unary_inner(request, context)):
                    yield response

            if handler.unary_unary is not None:
                return grpc.unary_unary_rpc_method_handler(
                    unary_unary, response_serializer=serializer
                )
            return grpc.unary_stream_rpc_method_handler(
                unary_stream, response_serializer=serializer
            )

        stream_inner = handler.stream_unary or handler.stream_stream

        async def parsed(
            requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
        ) -> AsyncIterator[Any]:
            async for data in requests:
                yield await _parse(data, parse, context)

        async def stream_unary(
            requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
        ) -> Any:
            return await stream_inner(parsed(requests, context), context)

        async def stream_stream(
            requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
        ) -> AsyncIterator[Any]:
            async for response in _responses(stream_inner(parsed(requests, context), context)):
                yield response

        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                stream_unary, response_serializer=serializer
            )
        return grpc.stream_stream_rpc_method_handler(stream_stream, response_serializer=serializer)
