"""A blocking facade for scripts and notebooks: the async ``Client`` on a private loop thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

from toolmesh._client import Client
from toolmesh._config import USE_CLIENT_DEFAULT, TlsConfig, _Unset
from toolmesh._functions import FunctionInfo
from toolmesh._transport import Metadata

__all__ = ["SyncClient"]

T = TypeVar("T")


class SyncClient:
    """Blocking twin of ``Client``: same arguments, same results, same errors.

    Safe to share between threads; calls from several threads run concurrently
    on the client's loop. Do not use it inside a running event loop: ``await``
    a ``Client`` there instead (it would block that loop).

        with toolmesh.SyncClient() as client:
            print(client.call("find", image=Path("street.jpg"), object_name="car"))
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
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="toolmesh-sync-client", daemon=True
        )
        self._thread.start()
        self._client = Client(
            address,
            timeout=timeout,
            metadata=metadata,
            max_message_bytes=max_message_bytes,
            tls=tls,
            token=token,
        )
        self._closed = False

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coro.close()
            raise RuntimeError(
                "SyncClient cannot be used inside a running event loop; "
                "use `await toolmesh.Client().call(...)` there instead"
            )
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    @property
    def address(self) -> str:
        return self._client.address

    def call(self, function: str, /, **arguments: Any) -> Any:
        """Call a function and block until its result; see ``Client.call``."""
        return self._run(self._client.call(function, **arguments))

    def functions(self) -> list[FunctionInfo]:
        return self._run(self._client.functions())

    def function(self, name: str) -> FunctionInfo:
        return self._run(self._client.function(name))

    def close(self) -> None:
        """Close the channel and stop the loop thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._run(self._client.aclose())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            self._loop.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
