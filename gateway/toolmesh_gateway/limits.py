"""Admission control: bounded in-flight calls, a bounded queue, a cap per client.

A gateway in front of GPUs must refuse work it cannot start soon rather than
pile it up: a backlog only grows memory and latency until every caller times
out. So the expensive RPCs (``Functions/Call`` and KServe ``ModelInfer``) pass
through :class:`Admission`: up to ``max_in_flight`` run at once, up to
``max_queue`` more wait in FIFO order, and past that a caller gets
RESOURCE_EXHAUSTED at once. One client identity (its token's name, else its
network address) may hold at most ``max_per_client`` running or queued calls,
so one greedy client cannot take the whole queue. A queued call waits at most
until its own deadline (or the default one) and then gets DEADLINE_EXCEEDED.

gRPC's own ``maximum_concurrent_rpcs`` (set from these numbers in
:mod:`toolmesh_gateway.server`) bounds everything else the server holds, so
the gateway's memory is capped by ``limit × max message size`` whatever the
load.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

import grpc

from toolmesh_gateway.interception import replace_unary

__all__ = ["Admission", "AdmissionInterceptor", "Limits", "Overloaded", "peer_host"]


@dataclass(frozen=True, slots=True)
class Limits:
    max_in_flight: int = 64
    max_queue: int = 512
    max_per_client: int = 256

    def __post_init__(self) -> None:
        if self.max_in_flight < 1 or self.max_queue < 0 or self.max_per_client < 1:
            raise ValueError(
                "admission limits need max_in_flight ≥ 1, max_queue ≥ 0, max_per_client ≥ 1; "
                f"got {self.max_in_flight}, {self.max_queue}, {self.max_per_client}"
            )


class Overloaded(Exception):
    """The call cannot be admitted now; the message says which bound it hit."""


class Admission:
    """A FIFO counting semaphore with a bounded queue and per-client caps.

    A freed slot passes straight to the oldest waiter, so a newcomer cannot
    overtake the queue. Single event loop only (no locks needed).
    """

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.in_flight = 0
        self.rejected = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._per_client: Counter[str] = Counter()

    @property
    def queued(self) -> int:
        return len(self._waiters)

    def holding(self, client: str) -> int:
        """Calls of ``client`` running or queued now."""
        return self._per_client[client]

    async def acquire(self, client: str, timeout: float) -> None:
        """Wait for a slot; Overloaded at once past a bound, TimeoutError after ``timeout``."""
        limits = self.limits
        if self._per_client[client] >= limits.max_per_client:
            self.rejected += 1
            raise Overloaded(
                f"client {client!r} already has {self._per_client[client]} calls running or "
                f"queued (limit {limits.max_per_client}); retry with backoff"
            )
        if self.in_flight < limits.max_in_flight and not self._waiters:
            self.in_flight += 1
            self._per_client[client] += 1
            return
        if len(self._waiters) >= limits.max_queue:
            self.rejected += 1
            raise Overloaded(
                f"gateway at capacity: {self.in_flight} calls running and {len(self._waiters)} "
                f"queued (limits {limits.max_in_flight} and {limits.max_queue}); "
                "retry with backoff"
            )
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._per_client[client] += 1
        try:
            async with asyncio.timeout(timeout):
                await waiter
        except BaseException:  # timed out or cancelled, possibly just after the slot came
            if waiter.done() and not waiter.cancelled():
                self.release(client)  # the slot arrived as we gave up: pass it on
            else:
                waiter.cancel()
                self._waiters.remove(waiter)
                self._forget(client)
            raise

    def release(self, client: str) -> None:
        """Free ``client``'s slot: hand it to the oldest waiter, or return it to the pool."""
        self._forget(client)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot changes hands; in_flight stays
                return
        self.in_flight -= 1

    def _forget(self, client: str) -> None:
        self._per_client[client] -= 1
        if self._per_client[client] <= 0:
            del self._per_client[client]


def peer_host(peer: str) -> str:
    """``ipv4:127.0.0.1:5000`` → ``127.0.0.1``; ``ipv6:[::1]:5000`` → ``[::1]``; else as given."""
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        host, _, _port = rest.rpartition(":")
        return host or rest
    return peer


class AdmissionInterceptor(grpc.aio.ServerInterceptor):
    """Admits the expensive methods through an :class:`Admission`; others pass freely.

    ``identify`` names the caller from the call's metadata (the token's grant
    when authentication is on); without a name the caller's address is used.
    """

    def __init__(
        self,
        admission: Admission,
        methods: Collection[str],
        *,
        default_timeout_s: float,
        identify: Callable[[grpc.HandlerCallDetails], str | None] | None = None,
    ) -> None:
        self.admission = admission
        self._methods = frozenset(methods)
        self._default_timeout_s = default_timeout_s
        self._identify = identify

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if (
            handler is None
            or handler.unary_unary is None
            or handler_call_details.method not in self._methods
        ):
            return handler
        name = self._identify(handler_call_details) if self._identify is not None else None
        inner = handler.unary_unary
        admission, default_timeout = self.admission, self._default_timeout_s

        async def admitted(request: Any, context: grpc.aio.ServicerContext) -> Any:
            client = name or peer_host(context.peer() or "unknown")
            remaining = context.time_remaining()
            try:
                await admission.acquire(
                    client, remaining if remaining is not None else default_timeout
                )
            except Overloaded as exc:
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
            except TimeoutError:
                await context.abort(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    f"deadline passed while queued ({admission.in_flight} calls running, "
                    f"{admission.queued} queued)",
                )
            try:
                return await inner(request, context)
            finally:
                admission.release(client)

        return replace_unary(handler, admitted)
