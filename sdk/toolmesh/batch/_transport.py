"""The batch runner's transport: per-call timing attributed to tasks, and retries.

It wraps the real transport (gRPC to the gateway, or the in-process baseline)
at the SDK's one seam, so programs run unchanged. Transient failures
(UNAVAILABLE, DEADLINE_EXCEEDED) are retried with exponential backoff and
"equal" jitter (half the delay fixed, half random): callers spread out, yet the
retries of one call always span at least half the backoff schedule, long
enough (about 9 s by default) to ride out a Triton or gateway restart. Every
other status is final and is recorded, not retried.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
import time
from dataclasses import dataclass, field
from typing import Any

import grpc

from toolmesh._transport import AsyncTransport, Metadata
from toolmesh.v1 import functions_pb2, registry_pb2

__all__ = ["TRANSIENT", "CallRecord", "RecordingTransport", "current_calls"]

TRANSIENT = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})

#: The list that calls made by the current task are recorded into.
current_calls: contextvars.ContextVar[list[CallRecord] | None] = contextvars.ContextVar(
    "toolmesh_batch_calls", default=None
)


@dataclass
class CallRecord:
    function: str
    start: float
    end: float = 0.0
    code: str = "OK"
    attempts: int = 1

    def as_json(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "start": self.start,
            "end": self.end,
            "seconds": self.end - self.start,
            "code": self.code,
            "attempts": self.attempts,
        }


@dataclass
class RecordingTransport:
    """Delegates to ``inner``; records each call; retries transient failures."""

    inner: AsyncTransport
    max_attempts: int = 8
    backoff_s: float = 0.25
    max_backoff_s: float = 5.0
    rng: random.Random = field(default_factory=random.Random)

    async def call(
        self, request: functions_pb2.CallRequest, *, timeout: float | None, metadata: Metadata
    ) -> functions_pb2.CallResponse:
        record = CallRecord(request.function, time.time())
        calls = current_calls.get()
        if calls is not None:
            calls.append(record)
        try:
            while True:
                try:
                    return await self.inner.call(request, timeout=timeout, metadata=metadata)
                except grpc.aio.AioRpcError as exc:
                    if exc.code() not in TRANSIENT or record.attempts >= self.max_attempts:
                        record.code = exc.code().name
                        raise
                    delay = min(self.max_backoff_s, self.backoff_s * 2 ** (record.attempts - 1))
                    await asyncio.sleep(delay / 2 + self.rng.uniform(0, delay / 2))
                    record.attempts += 1
        except Exception as exc:  # not an RPC status (e.g. a transport's own failure)
            if record.code == "OK":
                record.code = type(exc).__name__
            raise
        finally:
            record.end = time.time()

    async def list_functions(
        self, *, timeout: float | None, metadata: Metadata
    ) -> registry_pb2.ListFunctionsResponse:
        return await self.inner.list_functions(timeout=timeout, metadata=metadata)

    async def get_function(
        self, name: str, *, timeout: float | None, metadata: Metadata
    ) -> registry_pb2.Function:
        return await self.inner.get_function(name, timeout=timeout, metadata=metadata)

    async def aclose(self) -> None:
        await self.inner.aclose()
