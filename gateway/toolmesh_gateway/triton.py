"""Function calls on Triton through ``tritonclient.grpc.aio``: metadata, inference, errors.

Everything Triton-specific the Functions path does goes through here; which
server gets a call is ``endpoints.EndpointPool``'s decision.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import grpc
from tritonclient.grpc import InferInput, InferResult
from tritonclient.utils import InferenceServerException

from toolmesh_gateway.endpoints import Endpoint, EndpointPool
from toolmesh_gateway.errors import GatewayError

__all__ = ["ModelInfo", "TensorInfo", "TritonRouter", "map_triton_error"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TensorInfo:
    name: str
    datatype: str  # KServe v2 name: "UINT8", "BYTES", "FP32", ...
    optional: bool = False


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What the gateway must know of a model to build its tensors."""

    name: str
    inputs: Mapping[str, TensorInfo]
    outputs: Mapping[str, TensorInfo]
    max_batch_size: int


_UNREACHABLE = {"UNAVAILABLE", "NOT_FOUND", "UNKNOWN"}


def _status(exc: InferenceServerException) -> str:
    status = exc.status() or ""
    return status.removeprefix("StatusCode.")


def map_triton_error(exc: InferenceServerException, model: str, url: str) -> GatewayError:
    """The gRPC status a caller should see for a Triton failure."""
    status = _status(exc)
    message = exc.message() or str(exc)
    if status == "INVALID_ARGUMENT":
        return GatewayError(grpc.StatusCode.INVALID_ARGUMENT, message)
    if status == "DEADLINE_EXCEEDED":
        return GatewayError(
            grpc.StatusCode.DEADLINE_EXCEEDED, f"model {model!r} did not answer in time"
        )
    if status in _UNREACHABLE or "is not found" in message or "is not ready" in message:
        return GatewayError(
            grpc.StatusCode.UNAVAILABLE, f"model {model!r} is unavailable on {url}: {message}"
        )
    if status == "RESOURCE_EXHAUSTED":
        return GatewayError(grpc.StatusCode.RESOURCE_EXHAUSTED, message)
    if status == "CANCELLED":
        return GatewayError(grpc.StatusCode.CANCELLED, f"call to model {model!r} was cancelled")
    return GatewayError(grpc.StatusCode.INTERNAL, f"model {model!r} failed: {message}")


class TritonRouter:
    """Function calls to the Triton endpoints of an ``EndpointPool``.

    Model metadata is fetched once from any endpoint serving the model and
    cached (every endpoint serves the same model repository). A call that fails
    because its endpoint is unreachable ejects that endpoint and is retried
    once on another: our models are stateless, so the retry is safe.
    """

    def __init__(self, pool: EndpointPool) -> None:
        self.pool = pool
        self._models: dict[str, ModelInfo] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def model_info(self, model: str, *, timeout: float | None = 10.0) -> ModelInfo:
        """Inputs, outputs and batching of a model, fetched once and cached."""
        cached = self._models.get(model)
        if cached is not None:
            return cached
        lock = self._locks.setdefault(model, asyncio.Lock())
        async with lock:
            if model in self._models:
                return self._models[model]
            endpoint = self.pool.pick(model)
            try:
                config = await endpoint.client.get_model_config(model, client_timeout=timeout)
            except InferenceServerException as exc:
                raise map_triton_error(exc, model, endpoint.url) from exc
            cfg = config.config
            info = ModelInfo(
                name=model,
                inputs={
                    i.name: TensorInfo(i.name, _v2_datatype(i.data_type), i.optional)
                    for i in cfg.input
                },
                outputs={o.name: TensorInfo(o.name, _v2_datatype(o.data_type)) for o in cfg.output},
                max_batch_size=cfg.max_batch_size,
            )
            self._models[model] = info
            return info

    async def infer(
        self,
        model: str,
        inputs: Sequence[InferInput],
        *,
        version: str = "",
        timeout: float | None,
        headers: Mapping[str, str] | None = None,
    ) -> InferResult:
        deadline = None if timeout is None else time.monotonic() + timeout
        failed: Endpoint | None = None
        for attempt in (1, 2):
            endpoint = self.pool.pick(model, exclude=failed)
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.001)
            try:
                with endpoint.track():
                    return await endpoint.client.infer(
                        model,
                        list(inputs),
                        model_version=version,
                        client_timeout=remaining,
                        headers=dict(headers) if headers else None,
                    )
            except InferenceServerException as exc:
                if _status(exc) != "UNAVAILABLE":
                    raise map_triton_error(exc, model, endpoint.url) from exc
                endpoint.eject(exc.message() or "UNAVAILABLE")
                failed = endpoint
                if attempt == 2:
                    raise map_triton_error(exc, model, endpoint.url) from exc
                log.info("retrying %s on another endpoint after %s failed", model, endpoint.url)
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        await self.pool.aclose()


def _v2_datatype(config_type: int) -> str:
    """``TYPE_FP32`` (model config enum) → ``FP32`` (KServe v2 name); STRING is BYTES on the wire."""
    from tritonclient.grpc import model_config_pb2

    name = model_config_pb2.DataType.Name(config_type).removeprefix("TYPE_")
    return "BYTES" if name == "STRING" else name
