"""The one seam between the client and the network.

``Client`` builds requests and maps errors; a transport only moves messages.
Swapping the transport (an in-memory one in unit tests, a gateway-side one
that routes to several Tritons) changes nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import grpc
from opentelemetry.instrumentation.grpc import aio_client_interceptors

from toolmesh._config import ClientSettings
from toolmesh.v1 import functions_pb2, functions_pb2_grpc, registry_pb2, registry_pb2_grpc

__all__ = ["AsyncTransport", "GrpcTransport", "Metadata"]

Metadata = Sequence[tuple[str, str]]


@runtime_checkable
class AsyncTransport(Protocol):
    """Sends toolmesh requests and returns responses; raises ``grpc.aio.AioRpcError``."""

    async def call(
        self, request: functions_pb2.CallRequest, *, timeout: float | None, metadata: Metadata
    ) -> functions_pb2.CallResponse: ...

    async def list_functions(
        self, *, timeout: float | None, metadata: Metadata
    ) -> registry_pb2.ListFunctionsResponse: ...

    async def get_function(
        self, name: str, *, timeout: float | None, metadata: Metadata
    ) -> registry_pb2.Function: ...

    async def aclose(self) -> None: ...


class GrpcTransport:
    """gRPC to a gateway over one channel, reused by every call.

    A grpc.aio channel belongs to the event loop that created it, so a
    transport is created inside the loop that uses it.
    """

    def __init__(
        self,
        address: str,
        *,
        max_message_bytes: int,
        credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, int | str]] = (),
    ) -> None:
        channel_options = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
            *options,
        ]
        # One client span per RPC, with the W3C trace context injected into the
        # metadata by OpenTelemetry's own interceptors (no-ops without a provider).
        interceptors = aio_client_interceptors()  # type: ignore[no-untyped-call]
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(
                address, options=channel_options, interceptors=interceptors
            )
        else:
            self._channel = grpc.aio.secure_channel(
                address, credentials, options=channel_options, interceptors=interceptors
            )
        self._functions = functions_pb2_grpc.FunctionsStub(self._channel)
        self._registry = registry_pb2_grpc.RegistryStub(self._channel)

    @classmethod
    def from_settings(cls, settings: ClientSettings) -> GrpcTransport:
        """A transport to ``settings.address`` over TLS when ``settings.tls`` says so."""
        tls = settings.tls
        return cls(
            settings.address,
            max_message_bytes=settings.max_message_bytes,
            credentials=tls.credentials() if tls is not None else None,
            options=tls.channel_options() if tls is not None else (),
        )

    async def call(
        self, request: functions_pb2.CallRequest, *, timeout: float | None, metadata: Metadata
    ) -> functions_pb2.CallResponse:
        response: functions_pb2.CallResponse = await self._functions.Call(
            request, timeout=timeout, metadata=metadata or None
        )
        return response

    async def list_functions(
        self, *, timeout: float | None, metadata: Metadata
    ) -> registry_pb2.ListFunctionsResponse:
        response: registry_pb2.ListFunctionsResponse = await self._registry.ListFunctions(
            registry_pb2.ListFunctionsRequest(), timeout=timeout, metadata=metadata or None
        )
        return response

    async def get_function(
        self, name: str, *, timeout: float | None, metadata: Metadata
    ) -> registry_pb2.Function:
        response: registry_pb2.Function = await self._registry.GetFunction(
            registry_pb2.GetFunctionRequest(name=name), timeout=timeout, metadata=metadata or None
        )
        return response

    async def aclose(self) -> None:
        await self._channel.close()
