"""The asyncio client: the one implementation every other entry point delegates to."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from toolmesh._config import USE_CLIENT_DEFAULT, ClientSettings, TlsConfig, _Unset
from toolmesh._exceptions import Cancelled, ClientClosed, map_grpc_errors
from toolmesh._functions import FunctionInfo
from toolmesh._transport import AsyncTransport, GrpcTransport, Metadata
from toolmesh.v1 import functions_pb2
from toolmesh.wire import (
    ArgumentError,
    WireFormatError,
    decode_value,
    fill_value,
    raw_image_to_pil,
)

__all__ = ["Client", "ClientState"]


class ClientState(enum.Enum):
    UNOPENED = 1  # constructed; the channel opens on first use
    OPENED = 2
    CLOSED = 3


@dataclass
class _Core:
    """What a client and all its ``with_options`` views share: settings, channel, state."""

    settings: ClientSettings
    transport: AsyncTransport | None
    state: ClientState = ClientState.UNOPENED
    owns_transport: bool = True

    def transport_for_use(self) -> AsyncTransport:
        if self.state is ClientState.CLOSED:
            raise ClientClosed("this client has been closed; create a new one")
        if self.transport is None:
            # Created on first use so that it binds to the loop that uses it.
            self.transport = GrpcTransport.from_settings(self.settings)
        self.state = ClientState.OPENED
        return self.transport


@dataclass(frozen=True, slots=True)
class _Options:
    timeout: float | None
    metadata: tuple[tuple[str, str], ...] = field(default=())


class Client:
    """An asyncio client for a toolmesh gateway.

    One client holds one gRPC channel, reused by every call; it can be shared by
    any number of tasks on the event loop that first uses it. Use it as an async
    context manager, or call ``aclose()``::

        async with toolmesh.Client("localhost:50051") as client:
            people = await client.call("find", image=Path("street.jpg"), object_name="person")
            boxes = await asyncio.gather(
                *(client.call("find", image=img, object_name="car") for img in images)
            )

    Arguments may be PIL images, NumPy arrays, ``bytes`` or ``pathlib.Path`` for
    images, and plain Python values otherwise. Results are plain Python data
    matching the function's ``resultSchema``; images come back as PIL images.

    Args:
        address: ``host:port`` of the gateway; default ``TOOLMESH_ADDRESS`` or
            ``localhost:50051``.
        timeout: Seconds per call; ``None`` for no deadline. Default
            ``TOOLMESH_TIMEOUT`` or 60.
        metadata: gRPC metadata sent with every call.
        tls: A :class:`TlsConfig`, ``True`` (TLS with the system's roots) or
            ``False`` (plaintext); default from ``TOOLMESH_TLS_*``, else plaintext.
        token: Bearer token for a gateway that requires one; default ``TOOLMESH_TOKEN``.
        transport: Replaces the gRPC transport (tests, in-process routing).
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        timeout: float | _Unset | None = USE_CLIENT_DEFAULT,
        metadata: Metadata = (),
        max_message_bytes: int | None = None,
        tls: TlsConfig | bool | None = None,
        token: str | None = None,
        transport: AsyncTransport | None = None,
    ) -> None:
        settings = ClientSettings.resolve(address, timeout, max_message_bytes, tls=tls, token=token)
        self._core = _Core(settings, transport, owns_transport=True)
        self._options = _Options(settings.timeout, tuple(metadata))

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Typed errors; a call cut off by ``aclose()`` is ``Cancelled``, not CancelledError.

        grpc.aio raises ``asyncio.CancelledError`` for calls its channel cancels;
        passed on, that would end the caller's task as if someone had cancelled it.
        """
        try:
            with map_grpc_errors():
                yield
        except asyncio.CancelledError:
            task = asyncio.current_task()
            closed = self._core.state is ClientState.CLOSED
            if closed and (task is None or not task.cancelling()):
                raise Cancelled("the client was closed while this call was in flight") from None
            raise

    def _metadata(self) -> Metadata:
        """The view's metadata, after the client's credentials (never replaced by a view)."""
        auth = self._core.settings.auth_metadata()
        return (*auth, *self._options.metadata) if auth else self._options.metadata

    @property
    def address(self) -> str:
        return self._core.settings.address

    @property
    def state(self) -> ClientState:
        return self._core.state

    def with_options(
        self,
        *,
        timeout: float | _Unset | None = USE_CLIENT_DEFAULT,
        metadata: Metadata | None = None,
    ) -> Client:
        """A view of this client with other per-call options, sharing its channel.

        Closing any view closes the shared channel.
        """
        view = object.__new__(Client)
        view._core = self._core
        view._options = _Options(
            self._options.timeout if isinstance(timeout, _Unset) else timeout,
            self._options.metadata if metadata is None else tuple(metadata),
        )
        return view

    async def call(self, function: str, /, **arguments: Any) -> Any:
        """Call a registered function with keyword arguments and return its result.

        Raises:
            FunctionNotFound: no function of that name.
            InvalidArgument: arguments or an image were rejected.
            Unavailable: the gateway or model server is down.
            DeadlineExceeded: the call took longer than ``timeout``.
            ArgumentError: an argument cannot be sent (a type the wire cannot carry, an
                image path that is no readable file); a ``WireFormatError``.
        """
        request = build_call_request(function, arguments)
        transport = self._core.transport_for_use()
        with self._errors():
            response = await transport.call(
                request, timeout=self._options.timeout, metadata=self._metadata()
            )
        return decode_value(response.result, raw_image_to_pil)

    async def functions(self) -> list[FunctionInfo]:
        """Every registered function with its documentation and schemas."""
        transport = self._core.transport_for_use()
        with self._errors():
            response = await transport.list_functions(
                timeout=self._options.timeout, metadata=self._metadata()
            )
        return [FunctionInfo.from_proto(f) for f in response.functions]

    async def function(self, name: str) -> FunctionInfo:
        """One function's document; ``FunctionNotFound`` if it is not registered."""
        transport = self._core.transport_for_use()
        with self._errors():
            message = await transport.get_function(
                name, timeout=self._options.timeout, metadata=self._metadata()
            )
        return FunctionInfo.from_proto(message)

    async def aclose(self) -> None:
        """Close the channel. Idempotent; later calls raise ``ClientClosed``."""
        core = self._core
        if core.state is ClientState.CLOSED:
            return
        core.state = ClientState.CLOSED
        if core.transport is not None and core.owns_transport:
            await core.transport.aclose()

    async def __aenter__(self) -> Client:
        if self._core.state is ClientState.CLOSED:
            raise ClientClosed("cannot reopen a closed client")
        self._core.transport_for_use()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def build_call_request(function: str, arguments: Mapping[str, Any]) -> functions_pb2.CallRequest:
    """The wire request for a call; shared by every client flavour."""
    if not isinstance(function, str) or not function:
        raise TypeError("the function name must be a non-empty string")
    request = functions_pb2.CallRequest(function=function)
    for name, value in arguments.items():
        try:
            fill_value(request.arguments[name], value)
        except ArgumentError:
            raise
        except WireFormatError as exc:
            raise ArgumentError(name, str(exc)) from exc
    return request
