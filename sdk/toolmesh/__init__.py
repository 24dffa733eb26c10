"""toolmesh: call vision models served by Triton as typed, documented functions.

import asyncio, toolmesh
from pathlib import Path

async def main():
    people = await toolmesh.call("find", image=Path("street.jpg"), object_name="person")
    print(len(people), "people")

asyncio.run(main())
"""

from toolmesh._client import Client, ClientState
from toolmesh._config import USE_CLIENT_DEFAULT, ClientSettings, TlsConfig
from toolmesh._default import aclose_default_client, call, default_client, describe, functions
from toolmesh._exceptions import (
    AuthError,
    Cancelled,
    ClientClosed,
    DeadlineExceeded,
    FailedPrecondition,
    FunctionNotFound,
    InvalidArgument,
    PermissionDenied,
    RemoteError,
    ResourceExhausted,
    ToolmeshError,
    Unauthenticated,
    Unavailable,
)
from toolmesh._extensions import MissingPart
from toolmesh._functions import FunctionInfo
from toolmesh._sync import SyncClient
from toolmesh._transport import AsyncTransport, GrpcTransport, Metadata
from toolmesh.wire import ArgumentError, RawImage, WireFormatError

__version__ = "0.1.0"

__all__ = [
    "USE_CLIENT_DEFAULT",
    "ArgumentError",
    "AsyncTransport",
    "AuthError",
    "Cancelled",
    "Client",
    "ClientClosed",
    "ClientSettings",
    "ClientState",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FunctionInfo",
    "FunctionNotFound",
    "GrpcTransport",
    "InvalidArgument",
    "Metadata",
    "MissingPart",
    "PermissionDenied",
    "RawImage",
    "RemoteError",
    "ResourceExhausted",
    "SyncClient",
    "TlsConfig",
    "ToolmeshError",
    "Unauthenticated",
    "Unavailable",
    "WireFormatError",
    "aclose_default_client",
    "call",
    "default_client",
    "describe",
    "functions",
]
