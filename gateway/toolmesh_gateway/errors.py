"""One error type for everything a handler refuses, and its mapping to a gRPC status."""

from __future__ import annotations

import grpc

__all__ = ["GatewayError", "invalid_argument"]


class GatewayError(Exception):
    """A request the gateway answers with a non-OK status and a message safe to show."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"GatewayError({self.code.name}, {self.message!r})"


def invalid_argument(message: str) -> GatewayError:
    """The caller sent something wrong; ``message`` names the argument and says what."""
    return GatewayError(grpc.StatusCode.INVALID_ARGUMENT, message)
