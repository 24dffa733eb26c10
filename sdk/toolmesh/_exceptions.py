"""Typed errors raised by the SDK.

The tree, so callers can catch as broadly or as narrowly as they need::

    ToolmeshError
    ├── WireFormatError         a value cannot be put on the wire (toolmesh.wire)
    │   └── ArgumentError       …naming the call's argument (e.g. a missing image file)
    ├── ClientClosed            the client was used after ``aclose()``
    ├── Cancelled               the call was cancelled by this client
    └── RemoteError             the gateway answered with a non-OK gRPC status
        ├── InvalidArgument     INVALID_ARGUMENT, OUT_OF_RANGE
        ├── FunctionNotFound    NOT_FOUND
        ├── FailedPrecondition  FAILED_PRECONDITION
        ├── ResourceExhausted   RESOURCE_EXHAUSTED (payload too large, overload)
        ├── DeadlineExceeded    DEADLINE_EXCEEDED
        ├── Unavailable         UNAVAILABLE (gateway or model server down)
        └── AuthError
            ├── Unauthenticated     UNAUTHENTICATED (no token, or a wrong one)
            └── PermissionDenied    PERMISSION_DENIED (the token may not do this)

Every ``RemoteError`` keeps the gRPC ``code`` and the server's ``details`` so
nothing the server said is lost when the error is re-raised as a typed one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import grpc

__all__ = [
    "AuthError",
    "Cancelled",
    "ClientClosed",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FunctionNotFound",
    "InvalidArgument",
    "PermissionDenied",
    "RemoteError",
    "ResourceExhausted",
    "ToolmeshError",
    "Unauthenticated",
    "Unavailable",
    "map_grpc_errors",
]


class ToolmeshError(Exception):
    """Root of every error this SDK raises."""


class ClientClosed(ToolmeshError):
    """The client was used after it was closed."""


class Cancelled(ToolmeshError):
    """The call was cancelled by this client (not by the caller's task)."""


class RemoteError(ToolmeshError):
    """The gateway answered with a non-OK status."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class InvalidArgument(RemoteError):
    """The arguments, or an image among them, were rejected."""


class FunctionNotFound(RemoteError):
    """No function of that name is registered."""


class FailedPrecondition(RemoteError):
    """The function exists but cannot run now (e.g. its weights are missing)."""


class ResourceExhausted(RemoteError):
    """The payload was too large or the gateway is overloaded."""


class DeadlineExceeded(RemoteError):
    """The call did not finish before its deadline."""


class Unavailable(RemoteError):
    """The gateway or the model server behind it could not be reached."""


class AuthError(RemoteError):
    """The caller is not authenticated or not allowed to call this function."""


class Unauthenticated(AuthError):
    """No token was sent, or the gateway does not know it."""


class PermissionDenied(AuthError):
    """The token is valid but its grant does not cover this function or API."""


_BY_CODE: dict[grpc.StatusCode, type[RemoteError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: FunctionNotFound,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
}


def error_for(code: grpc.StatusCode, details: str) -> RemoteError:
    """The most specific ``RemoteError`` subclass for a status code."""
    return _BY_CODE.get(code, RemoteError)(code, details)


@contextmanager
def map_grpc_errors() -> Iterator[None]:
    """Re-raise gRPC errors from the block as typed SDK errors.

    A CANCELLED status that this client caused becomes ``Cancelled``; a
    cancellation of the caller's own task stays ``asyncio.CancelledError``, so
    task groups and timeouts keep working.
    """
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        code = exc.code()
        if code == grpc.StatusCode.CANCELLED:
            raise Cancelled(exc.details() or "cancelled") from exc
        raise error_for(code, exc.details() or "") from exc
    except asyncio.CancelledError:
        raise
