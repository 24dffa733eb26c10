"""``toolmesh.call()``: module-level calls through one default client per event loop.

A grpc.aio channel cannot be shared across event loops, and a program may run
several loops in turn (``asyncio.run`` twice), so the default client is kept
per loop; it is the only module-level state in the SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Iterator
from typing import Any

from toolmesh._client import Client
from toolmesh._functions import FunctionInfo

__all__ = [
    "aclose_default_client",
    "call",
    "default_client",
    "describe",
    "functions",
    "use_default_client",
]

_default_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Client] = (
    weakref.WeakKeyDictionary()
)


def default_client() -> Client:
    """The running loop's default client, configured from ``TOOLMESH_*`` settings."""
    loop = asyncio.get_running_loop()
    client = _default_clients.get(loop)
    if client is None:
        client = _default_clients[loop] = Client()
    return client


@contextlib.contextmanager
def use_default_client(client: Client) -> Iterator[Client]:
    """Make ``client`` the running loop's default (``toolmesh.call``) for the block.

    The batch runner uses it to run unchanged programs through its own
    transport (retries, timing, or the in-process baseline).
    """
    loop = asyncio.get_running_loop()
    previous = _default_clients.get(loop)
    _default_clients[loop] = client
    try:
        yield client
    finally:
        if previous is None:
            _default_clients.pop(loop, None)
        else:
            _default_clients[loop] = previous


async def call(function: str, /, **arguments: Any) -> Any:
    """Call a registered function on the default client: ``await toolmesh.call("find", ...)``."""
    return await default_client().call(function, **arguments)


async def functions() -> list[FunctionInfo]:
    """Every registered function's document, from the default client."""
    return await default_client().functions()


async def describe(name: str) -> FunctionInfo:
    """One function's document, from the default client."""
    return await default_client().function(name)


async def aclose_default_client() -> None:
    """Close the running loop's default client (e.g. at the end of ``main()``)."""
    client = _default_clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()
