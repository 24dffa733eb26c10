"""Profiles: what one device type does with each model, as a file a plan can read.

A profile is measured once per device type (``toolmesh profile``) and travels as a
plain YAML or JSON file, so a plan made on a laptop can use profiles measured on a
GPU node elsewhere. It holds, per model, the service-time distribution of one
request at each batch size (quantiles, so the simulator samples the measured shape
rather than assuming one) and the throughput reached at each concurrency, and, per
device, its *parallelism*: how many instances run at full speed at once (two on a
2-core CPU; on a GPU whatever its streaming multiprocessors overlap).
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

__all__ = [
    "FORMAT_VERSION",
    "QUANTILES",
    "ConcurrencyPoint",
    "DeviceProfile",
    "ModelProfile",
    "ProfileError",
    "ServiceDistribution",
    "ServiceTime",
    "load_profile",
    "save_profile",
]

FORMAT_VERSION = 1
#: The quantiles a service-time distribution is stored at (0 and 1 are min and max).
QUANTILES: tuple[float, ...] = tuple(i / 20 for i in range(21))


class ProfileError(ValueError):
    """A profile file that cannot be read as one."""


class ServiceDistribution(Protocol):
    """What the simulator needs of a service time: its mean and a way to draw one."""

    @property
    def mean(self) -> float: ...

    def sample(self, rng: random.Random) -> float: ...


@dataclass(frozen=True)
class ServiceTime:
    """A service-time distribution in seconds, stored as its quantiles at :data:`QUANTILES`.

    Sampling inverts the piecewise-linear CDF through those points, so a profile
    with a long tail produces a long tail in the simulation.
    """

    quantiles: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.quantiles) != len(QUANTILES):
            raise ProfileError(f"expected {len(QUANTILES)} quantiles, got {len(self.quantiles)}")
        if any(b < a for a, b in itertools.pairwise(self.quantiles)):
            raise ProfileError("quantiles must not decrease")
        if self.quantiles[0] < 0:
            raise ProfileError("service times must not be negative")

    @classmethod
    def of(cls, samples: Sequence[float]) -> ServiceTime:
        """The distribution of measured samples (at least one)."""
        if not samples:
            raise ProfileError("no samples")
        ordered = sorted(samples)
        last = len(ordered) - 1
        points = []
        for q in QUANTILES:
            position = q * last
            low = math.floor(position)
            high = min(last, low + 1)
            frac = position - low
            points.append(ordered[low] * (1 - frac) + ordered[high] * frac)
        return cls(tuple(points))

    @classmethod
    def constant(cls, seconds: float) -> ServiceTime:
        return cls(tuple(seconds for _ in QUANTILES))

    @property
    def mean(self) -> float:
        """Mean of the piecewise-linear distribution (trapezoids between quantiles)."""
        q = self.quantiles
        step = 1 / (len(q) - 1)
        return sum((a + b) / 2 * step for a, b in itertools.pairwise(q))

    def quantile(self, q: float) -> float:
        """The ``q`` quantile (0 ≤ q ≤ 1), interpolated between the stored ones."""
        return self.sample(_Fixed(min(1.0, max(0.0, q))))

    def sample(self, rng: random.Random) -> float:
        u = rng.random() * (len(self.quantiles) - 1)
        i = min(int(u), len(self.quantiles) - 2)
        frac = u - i
        return self.quantiles[i] * (1 - frac) + self.quantiles[i + 1] * frac

    def scaled(self, factor: float) -> ServiceTime:
        return ServiceTime(tuple(x * factor for x in self.quantiles))


@dataclass(frozen=True)
class ConcurrencyPoint:
    """Closed-loop load at one concurrency: requests per second and mean latency."""

    throughput_per_s: float
    mean_latency_s: float


@dataclass(frozen=True)
class ModelProfile:
    """One model on one device type.

    ``service`` maps a batch size to the service time of one request of that many
    items; sizes between measured ones are interpolated, larger ones extrapolated
    at the largest measured size's time per item. ``instances`` is how many
    instances the measured server ran (concurrency points depend on it).
    ``memory_gb`` is what one instance holds on the device (0: unknown or small);
    the search keeps a pool's instances within its node type's memory.
    ``hop_s`` is what a call of its function cost through the gateway beyond
    Triton's own time, on the profiled machine (its payloads' share of the hop).
    """

    functions: tuple[str, ...]
    service: Mapping[int, ServiceDistribution]
    instances: int = 1
    max_batch_size: int = 0
    kind: str = "KIND_CPU"
    concurrency: Mapping[int, ConcurrencyPoint] = field(default_factory=dict)
    memory_gb: float = 0.0
    hop_s: float = 0.0

    def __post_init__(self) -> None:
        if 1 not in self.service:
            raise ProfileError("a model profile needs the service time at batch size 1")

    def batch_time(self, size: int, rng: random.Random | None = None) -> float:
        """Service time of a batch of ``size`` (a sample if ``rng`` is given, else the mean)."""
        sizes = sorted(self.service)
        if size in self.service:
            dist = self.service[size]
            return dist.sample(rng) if rng is not None else dist.mean
        if size > sizes[-1]:
            top = sizes[-1]
            base = self.service[top].sample(rng) if rng is not None else self.service[top].mean
            return base * size / top
        i = bisect.bisect_left(sizes, size)
        low, high = sizes[i - 1], sizes[i]
        u = rng.random() if rng is not None else None
        a = self.service[low].sample(_Fixed(u)) if u is not None else self.service[low].mean
        b = self.service[high].sample(_Fixed(u)) if u is not None else self.service[high].mean
        frac = (size - low) / (high - low)
        return a * (1 - frac) + b * frac

    def best_time_per_item(self, max_batch: int) -> float:
        """The least mean time per item over batch sizes up to ``max_batch`` (a lower bound)."""
        sizes = [s for s in self.service if s <= max(1, max_batch)]
        return min(self.service[s].mean / s for s in sizes)


class _Fixed(random.Random):
    """A generator that always draws ``u``: both ends of an interpolation use one quantile."""

    def __init__(self, u: float) -> None:
        super().__init__(0)
        self._u = u

    def random(self) -> float:
        return self._u


def _quantiles(dist: ServiceDistribution) -> tuple[float, ...]:
    if isinstance(dist, ServiceTime):
        return dist.quantiles
    return ServiceTime.constant(dist.mean).quantiles  # only measured distributions are saved


@dataclass(frozen=True)
class DeviceProfile:
    """Every profiled model on one device type, and what the device is.

    ``hop_s`` is what a call through the gateway cost beyond the same request
    straight to Triton on the profiled machine (0: not measured).
    """

    device_type: str
    models: Mapping[str, ModelProfile]
    parallelism: float = 1.0
    description: str = ""
    machine: Mapping[str, Any] = field(default_factory=dict)
    hop_s: float = 0.0

    def model_of(self, function: str) -> str | None:
        """The model that serves ``function`` on this device, if profiled."""
        for name, model in self.models.items():
            if function in model.functions or function == name:
                return name
        return None

    def as_json(self) -> dict[str, Any]:
        return {
            "toolmesh_profile": FORMAT_VERSION,
            "device": {
                "type": self.device_type,
                "description": self.description,
                "parallelism": round(self.parallelism, 4),
                "hop_s": round(self.hop_s, 6),
                **dict(self.machine),
            },
            "models": {
                name: {
                    "functions": list(m.functions),
                    "kind": m.kind,
                    "instances": m.instances,
                    "max_batch_size": m.max_batch_size,
                    "memory_gb": m.memory_gb,
                    "hop_s": round(m.hop_s, 6),
                    "service_s": {
                        int(size): {
                            "mean": round(dist.mean, 6),
                            "quantiles": [round(x, 6) for x in _quantiles(dist)],
                        }
                        for size, dist in sorted(m.service.items())
                    },
                    "concurrency": {
                        int(c): {
                            "throughput_per_s": round(p.throughput_per_s, 3),
                            "mean_latency_s": round(p.mean_latency_s, 6),
                        }
                        for c, p in sorted(m.concurrency.items())
                    },
                }
                for name, m in sorted(self.models.items())
            },
        }

    @classmethod
    def from_json(cls, document: Any, *, source: str = "profile") -> DeviceProfile:
        try:
            if document.get("toolmesh_profile") != FORMAT_VERSION:
                raise ProfileError(f"not a toolmesh profile (version {FORMAT_VERSION})")
            device = dict(document["device"])
            models = {
                str(name): ModelProfile(
                    functions=tuple(str(f) for f in spec.get("functions", [name])),
                    service={
                        int(size): ServiceTime(tuple(float(x) for x in dist["quantiles"]))
                        for size, dist in spec["service_s"].items()
                    },
                    instances=int(spec.get("instances", 1)),
                    max_batch_size=int(spec.get("max_batch_size", 0)),
                    kind=str(spec.get("kind", "KIND_CPU")),
                    memory_gb=float(spec.get("memory_gb", 0.0)),
                    hop_s=float(spec.get("hop_s", 0.0)),
                    concurrency={
                        int(c): ConcurrencyPoint(
                            float(p["throughput_per_s"]), float(p["mean_latency_s"])
                        )
                        for c, p in (spec.get("concurrency") or {}).items()
                    },
                )
                for name, spec in document["models"].items()
            }
            device_type = str(device.pop("type"))
            parallelism = float(device.pop("parallelism", 1.0))
            description = str(device.pop("description", ""))
            hop = float(device.pop("hop_s", 0.0))
        except ProfileError as exc:
            raise ProfileError(f"{source}: {exc}") from exc
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ProfileError(
                f"{source}: malformed profile ({type(exc).__name__}: {exc})"
            ) from exc
        if parallelism <= 0:
            raise ProfileError(f"{source}: device parallelism must be positive")
        return cls(device_type, models, parallelism, description, device, hop)


def load_profile(path: Path) -> DeviceProfile:
    """Read a profile file (YAML or JSON; JSON is YAML)."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: not YAML or JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ProfileError(f"{path}: not a toolmesh profile")
    return DeviceProfile.from_json(document, source=str(path))


def save_profile(profile: DeviceProfile, path: Path) -> None:
    """Write ``profile``: JSON when the name ends in ``.json``, else YAML."""
    document = profile.as_json()
    if path.suffix == ".json":
        path.write_text(json.dumps(document, indent=1) + "\n")
    else:
        path.write_text(yaml.safe_dump(document, sort_keys=False, width=100))
