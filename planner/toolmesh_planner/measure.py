"""``toolmesh profile``'s measurements: each model's service times, straight on Triton.

As perf_analyzer does, requests go to Triton itself (``tritonclient``), not through
the gateway: a profile describes the device, and the hop to it is the plan's own
parameter. The gateway is asked only for its registry, which says which model
serves each function and what the function's parameters are, so the requests are
the tensors the gateway would build (``triton_models/README.md``) with sample
arguments. Per model:

- **batch size 1, one request at a time**: the service-time distribution;
- **larger batches** (models with ``max_batch_size`` > 0): the same, per batch size;
- **concurrency** 2, 4, …: closed-loop throughput and latency, from which the
  device's *parallelism* follows: ``throughput × service time`` at the highest
  concurrency is how many instances ran at full speed at once.
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tritonclient.grpc import InferInput
from tritonclient.grpc.aio import InferenceServerClient
from tritonclient.utils import InferenceServerException

import toolmesh
from toolmesh_planner.profile import (
    ConcurrencyPoint,
    DeviceProfile,
    ModelProfile,
    ServiceDistribution,
    ServiceTime,
)

__all__ = ["ProfileSettings", "model_inputs", "profile_device", "read_image"]

#: Sample arguments by parameter name, where the schema gives no default or choice.
_SAMPLES: dict[str, Any] = {
    "object_name": "person",
    "question": "What is in the picture?",
    "property": "red",
    "text": "a street with people",
    "texts": ["a street", "a beach"],
    "format": "PNG",
    "width": 640,
    "height": 480,
}

_NUMPY_TYPES = {
    "TYPE_UINT8": np.uint8,
    "TYPE_UINT16": np.uint16,
    "TYPE_INT32": np.int32,
    "TYPE_INT64": np.int64,
    "TYPE_FP32": np.float32,
    "TYPE_FP64": np.float64,
    "TYPE_BOOL": np.bool_,
    "TYPE_STRING": np.object_,
}


@dataclass(frozen=True)
class ProfileSettings:
    """How much to measure: samples per point, batch sizes, concurrencies."""

    samples: int = 30
    batch_samples: int = 10
    batch_sizes: tuple[int, ...] = (2, 4, 8)
    concurrencies: tuple[int, ...] = (2, 4)
    warmup: int = 3


def _sample_value(name: str, schema: Mapping[str, Any], image: bytes) -> Any:
    if schema.get("format") == "image":
        return image
    kind = schema.get("type")
    if kind == "array":
        items = schema.get("items", {})
        if items.get("format") == "image":
            return [image, image]
        if name in _SAMPLES and isinstance(_SAMPLES[name], list):
            return _SAMPLES[name]
        return [] if not schema.get("minItems") else [_sample_value(name, items, image)]
    if "default" in schema:
        return schema["default"]
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "string":
        return _SAMPLES.get(name, "person")
    if kind in ("number", "integer"):
        if name in _SAMPLES:
            return _SAMPLES[name]
        return schema.get("multipleOf", schema.get("minimum", 1))
    if kind == "boolean":
        return False
    return _SAMPLES.get(name, "")


def model_inputs(
    function: toolmesh.FunctionInfo, config: Mapping[str, Any], image: bytes, batch: int = 1
) -> list[InferInput]:
    """The tensors of one request of ``batch`` items, built as the gateway builds them.

    Raises:
        ValueError: a parameter the model's config has no input for.
    """
    declared = {i["name"]: i for i in config.get("input", [])}
    batched = int(config.get("max_batch_size", 0)) > 0
    properties: dict[str, Any] = function.parameters_schema.get("properties", {})
    inputs: list[InferInput] = []
    for name, schema in properties.items():
        if name not in declared:
            raise ValueError(f"model {function.model!r} has no input {name!r}")
        value = _sample_value(name, schema, image)
        if schema.get("format") == "image":
            array = np.frombuffer(value, dtype=np.uint8)
        elif schema.get("type") == "array" and schema.get("items", {}).get("format") == "image":
            array = np.array(value, dtype=np.object_)
        else:
            dtype = _NUMPY_TYPES.get(declared[name].get("data_type", ""), np.object_)
            items = value if isinstance(value, list) else [value]
            if dtype is np.object_:
                array = np.array([str(v).encode() for v in items], dtype=np.object_)
            else:
                array = np.array(items, dtype=dtype)
            dims = [int(d) for d in declared[name].get("dims", [])]
            if len(dims) == 2 and array.size == 0:
                array = array.reshape(0, dims[1])
        if batched:
            array = np.stack([array] * batch)
        tensor = InferInput(name, list(array.shape), _triton_type(declared[name]["data_type"]))
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return inputs


def _triton_type(config_type: str) -> str:
    return "BYTES" if config_type == "TYPE_STRING" else config_type.removeprefix("TYPE_")


async def _timed(call: Callable[[], Any], n: int) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        await call()
        times.append(time.perf_counter() - started)
    return times


async def _closed_loop(
    call: Callable[[], Any], concurrency: int, requests: int
) -> ConcurrencyPoint:
    remaining = requests
    latencies: list[float] = []

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return ConcurrencyPoint(len(latencies) / elapsed, statistics.fmean(latencies))


async def _alternating(
    direct: Callable[[], Any], gateway: Callable[[], Any] | None, n: int
) -> tuple[list[float], list[float]]:
    """``n`` requests straight to Triton, each followed by the same call through the
    gateway (if given), so that drift on a busy machine hits both sides alike."""
    straight: list[float] = []
    through: list[float] = []
    for _ in range(n):
        started = time.perf_counter()
        await direct()
        straight.append(time.perf_counter() - started)
        if gateway is not None:
            started = time.perf_counter()
            await gateway()
            through.append(time.perf_counter() - started)
    return straight, through


async def _profile_model(
    triton: InferenceServerClient,
    client: toolmesh.Client | None,
    model: str,
    functions: Sequence[toolmesh.FunctionInfo],
    image: bytes,
    settings: ProfileSettings,
    progress: Callable[[str], None],
) -> ModelProfile:
    config = (await triton.get_model_config(model, as_json=True))["config"]
    groups = config.get("instance_group", [])
    instances = sum(int(g.get("count", 1)) * max(1, len(g.get("gpus", []))) for g in groups) or 1
    kind = str(groups[0].get("kind", "KIND_CPU")) if groups else "KIND_CPU"
    max_batch = int(config.get("max_batch_size", 0))
    function = functions[0]

    def request(batch: int) -> Callable[[], Any]:
        inputs = model_inputs(function, config, image, batch)
        return lambda: triton.infer(model, inputs)

    gateway: Callable[[], Any] | None = None
    if client is not None:
        properties: dict[str, Any] = function.parameters_schema.get("properties", {})
        arguments = {n: _sample_value(n, s, image) for n, s in properties.items()}

        def gateway() -> Any:
            return client.call(function.name, **arguments)

    one = request(1)
    await _alternating(one, gateway, settings.warmup)
    straight, through = await _alternating(one, gateway, settings.samples)
    service: dict[int, ServiceDistribution] = {1: ServiceTime.of(straight)}
    # the gateway's cost for this function's payloads, beyond Triton's own time
    hop = max(0.0, statistics.median(through) - statistics.median(straight)) if through else 0.0
    progress(
        f"{model}: batch 1 mean {service[1].mean * 1000:.1f} ms, gateway hop {hop * 1000:.2f} ms"
    )
    batcher = "dynamic_batching" in config
    for size in settings.batch_sizes:
        if size > max_batch:
            continue
        try:
            service[size] = ServiceTime.of(await _timed(request(size), settings.batch_samples))
        except InferenceServerException as exc:
            # toolmesh's models take one item per request and batch through Triton's
            # dynamic batcher: time `size` simultaneous requests, which it groups
            if not batcher:
                progress(
                    f"{model}: batch {size} not profiled: one item per request "
                    f"({exc.message()}) and no dynamic batching in this placement"
                )
                break
            together = lambda n=size: asyncio.gather(*(one() for _ in range(n)))  # noqa: E731
            service[size] = ServiceTime.of(await _timed(together, settings.batch_samples))
        progress(f"{model}: batch {size} mean {service[size].mean * 1000:.1f} ms")
    points = {1: ConcurrencyPoint(1 / service[1].mean, service[1].mean)}
    for concurrency in settings.concurrencies:
        points[concurrency] = await _closed_loop(
            one, concurrency, max(settings.samples, 8 * concurrency)
        )
        progress(
            f"{model}: concurrency {concurrency}: {points[concurrency].throughput_per_s:.1f}/s"
        )
    return ModelProfile(
        functions=tuple(sorted(f.name for f in functions)),
        service=service,
        instances=instances,
        max_batch_size=max_batch,
        kind=kind,
        concurrency=points,
        hop_s=hop,
    )


def _parallelism(models: Mapping[str, ModelProfile], fallback: float) -> float:
    """Instances at full speed at once: throughput × service time under load (the best
    concurrency point), over the models that ran more than one instance (else ``fallback``)."""
    readings = []
    for model in models.values():
        if model.instances < 2 or len(model.concurrency) < 2:
            continue
        # the best of the loaded points: a busy machine only ever lowers a reading
        rate = max(p.throughput_per_s for c, p in model.concurrency.items() if c > 1)
        readings.append(min(model.instances, rate * model.service[1].mean))
    return max(1.0, statistics.median(readings)) if readings else fallback


def _occupancy(model: ModelProfile, parallelism: float) -> ModelProfile:
    """Split one request's latency at concurrency 1 into what occupies an instance and
    what does not.

    Under load an instance starts its next request while the last one's answer is
    still on its way, so it serves ``min(instances, parallelism) / throughput`` seconds
    a request at best; the rest of the latency at concurrency 1 (serialization, the
    loopback, the python backend's hand-over) is latency only. The service-time
    distribution is scaled to that occupancy and the rest joins the model's hop.
    """
    loaded = [p.throughput_per_s for c, p in model.concurrency.items() if c > 1]
    latency = model.service[1]
    if not loaded or not isinstance(latency, ServiceTime):
        return model
    occupancy = min(model.instances, parallelism) / max(loaded)
    if not 0 < occupancy < latency.mean:
        return model
    factor = occupancy / latency.mean
    service = {
        size: (dist.scaled(factor) if isinstance(dist, ServiceTime) else dist)
        for size, dist in model.service.items()
    }
    return replace(model, service=service, hop_s=model.hop_s + latency.mean - occupancy)


async def profile_device(
    triton_url: str,
    functions: Sequence[toolmesh.FunctionInfo],
    *,
    device_type: str,
    image: bytes,
    settings: ProfileSettings = ProfileSettings(),
    description: str = "",
    address: str | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> DeviceProfile:
    """Profile the models behind ``functions`` on the Triton at ``triton_url``; the
    gateway at ``address`` serves them too, for each one's hop (see ``ModelProfile.hop_s``)."""
    by_model: dict[str, list[toolmesh.FunctionInfo]] = {}
    for function in functions:
        by_model.setdefault(function.model or function.name, []).append(function)
    models: dict[str, ModelProfile] = {}
    async with (
        InferenceServerClient(triton_url) as triton,
        toolmesh.Client(address) as client,
    ):
        for model, served in sorted(by_model.items()):
            models[model] = await _profile_model(
                triton, client, model, served, image, settings, progress
            )
    cpus = os.cpu_count() or 1
    parallelism = _parallelism(models, float(cpus))
    models = {name: _occupancy(m, parallelism) for name, m in models.items()}
    hop = statistics.median(m.hop_s for m in models.values()) if models else 0.0
    machine = {
        "host": platform.node(),
        "machine": platform.machine(),
        "cpus": cpus,
        "python": platform.python_version(),
        "triton_url": triton_url,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return DeviceProfile(
        device_type=device_type,
        models=models,
        parallelism=parallelism,
        description=description,
        machine=machine,
        hop_s=hop,
    )


def read_image(path: Path | None) -> bytes:
    """The image the requests carry: ``path``, or the first bundled street frame."""
    if path is not None:
        return path.read_bytes()
    from toolmesh.data import STREET_FRAMES

    return sorted(STREET_FRAMES.glob("*.jpg"))[0].read_bytes()
