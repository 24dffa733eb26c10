"""Where model instances run: ``placement.yaml`` → Triton ``instance_group`` entries.

The committed ``config.pbtxt`` files carry no placement; it depends on the
machine. :func:`instance_groups` turns a model's placement and the machine's GPU
inventory into instance groups: one ``KIND_GPU`` group per GPU the model uses,
or one ``KIND_CPU`` group when the model is pinned to the CPU or the machine has
no GPU. The file format is documented at the top of ``placement.yaml``.

A cluster runs one Triton pool per GPU type, and a pool need not load every
model: the optional ``pools:`` section says which models each pool loads (and may
override their settings there). :meth:`Placement.for_pool` narrows a placement to
one pool; the renderer then writes only that pool's models. The gateway reads the
same section (each pool's Service and model names) to route a function to the
pools that serve its model, so its shape is a contract with
``toolmesh_gateway.pools``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from tritonclient.grpc import model_config_pb2

from .errors import PlacementError
from .paths import PLACEMENT_FILE

__all__ = [
    "GPUS_ENV",
    "ModelPlacement",
    "Placement",
    "PoolPlacement",
    "detect_gpus",
    "instance_groups",
    "load_placement",
    "parse_placement",
]

GPUS_ENV = "TOOLMESH_GPUS"
"""Overrides GPU detection: ``"0,1"`` (these CUDA indices) or ``""`` (no GPU)."""

_KEYS = frozenset({"kind", "count", "cpu_count", "gpus", "batching"})
_KINDS = ("gpu", "cpu")
_BATCHING = ("always", "gpu", "never")
_POOL_KEYS = frozenset({"service", "models"})
#: Kubernetes' DNS-1035 label: what a Service name must be (and, as the gateway checks the
#: same, a pool name, which becomes part of object names through the overlay's nameSuffix).
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class ModelPlacement:
    """One model's placement, after merging ``defaults``.

    Attributes:
        kind: ``"gpu"``: on the GPUs when the machine has any, else on the CPU;
            ``"cpu"``: always on the CPU.
        count: Instances per GPU (or on the CPU).
        cpu_count: Instances when running on the CPU; None means ``count``.
        gpus: GPU indices to use; None means every GPU of the machine.
        batching: Whether the rendered config keeps its ``dynamic_batching``:
            ``"always"``; ``"gpu"``, only where the instances are KIND_GPU (a
            model whose CPU forward pass takes one image at a time, where a
            batch would run serially on one instance while another idles);
            ``"never"``.
    """

    kind: str = "gpu"
    count: int = 1
    cpu_count: int | None = None
    gpus: tuple[int, ...] | None = None
    batching: str = "always"

    def batches(self, groups: Sequence[model_config_pb2.ModelInstanceGroup]) -> bool:
        """Whether a model rendered with ``groups`` keeps its dynamic batcher."""
        if self.batching == "gpu":
            return any(g.kind == model_config_pb2.ModelInstanceGroup.KIND_GPU for g in groups)
        return self.batching == "always"


@dataclass(frozen=True)
class PoolPlacement:
    """One entry of the ``pools:`` section: a Triton pool and the models it loads.

    Attributes:
        name: The pool's name (``pools.<name>``), a DNS-1035 label.
        service: The pool's Kubernetes Service, whose EndpointSlices the gateway
            watches (default ``triton-<name>``).
        models: Each model the pool loads, with the settings it overrides in this
            pool only (often none: ``{}``).
    """

    name: str
    service: str
    models: Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class Placement:
    """A parsed placement file, or one pool's view of it (see :meth:`for_pool`).

    Attributes:
        source: Where it came from, for error messages.
        defaults: Settings applied to every model (``defaults:``).
        models: Each named model's own settings (``models:``), not yet merged with
            ``defaults``; in a pool's view, already merged with the pool's entry.
        pools: The ``pools:`` section by pool name; empty when the file has none
            (one pool loading every model).
        pool: The pool this view is narrowed to, or None for the whole file.
    """

    source: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    models: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    pools: Mapping[str, PoolPlacement] = field(default_factory=dict)
    pool: str | None = None

    @property
    def loads(self) -> frozenset[str] | None:
        """The models a rendering of this placement holds: the pool's, or None (every model)."""
        if self.pool is None:
            return None
        return frozenset(self.pools[self.pool].models)

    def for_pool(self, name: str) -> Placement:
        """Return the view of pool ``name``: only its models, its settings merged over ``models``.

        A pool's model entry overrides the model's top-level ``models`` entry, which
        overrides ``defaults``: the pool says what differs on its hardware, the rest
        stays in one place.

        Raises:
            PlacementError: The file has no ``pools:`` section or no pool ``name``;
                the message lists the pools there are.
        """
        if not self.pools:
            raise PlacementError(
                f"{self.source}: there is no pool {name!r}: the file has no 'pools:' section "
                "(without one, render every model: leave out --pool)"
            )
        if name not in self.pools:
            raise PlacementError(
                f"{self.source}: there is no pool {name!r}; the pools are {sorted(self.pools)}"
            )
        if self.pool is not None and self.pool != name:
            raise PlacementError(
                f"{self.source}: this is already pool {self.pool!r}'s view; ask the whole file"
            )
        merged = dict(self.models)
        for model, overrides in self.pools[name].models.items():
            merged[model] = {**self.models.get(model, {}), **overrides}
        return replace(self, models=merged, pool=name)

    def for_model(self, model: str) -> ModelPlacement:
        """Return ``model``'s placement: its own settings over ``defaults``.

        A model the file does not name gets the defaults.
        """
        merged = {**self.defaults, **self.models.get(model, {})}
        gpus = merged.get("gpus")
        return ModelPlacement(
            kind=merged.get("kind", "gpu"),
            count=merged.get("count", 1),
            cpu_count=merged.get("cpu_count"),
            gpus=None if gpus is None else tuple(gpus),
            batching=merged.get("batching", "always"),
        )


def load_placement(path: Path | str = PLACEMENT_FILE) -> Placement:
    """Read and validate a placement file.

    Raises:
        PlacementError: The file is missing, not YAML, or has an unknown key or
            a bad value; the message names the file and the field.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlacementError(f"{path}: cannot read the placement file: {exc}") from exc
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PlacementError(f"{path}: not valid YAML: {exc}") from exc
    return parse_placement(document, source=str(path))


def parse_placement(document: Any, *, source: str = "placement") -> Placement:
    """Validate an already-loaded placement document (see :func:`load_placement`).

    Raises:
        PlacementError: Unknown key or bad value; the message names ``source`` and
            the field.
    """
    if document is None:
        return Placement(source=source)
    if not isinstance(document, dict):
        raise PlacementError(f"{source}: expected a mapping with 'defaults', 'models' and 'pools'")
    unknown = set(document) - {"defaults", "models", "pools"}
    if unknown:
        raise PlacementError(
            f"{source}: unknown top-level key(s) {sorted(map(str, unknown))}; "
            "expected 'defaults', 'models' and 'pools'"
        )
    defaults = _settings(document.get("defaults") or {}, f"{source}: defaults")
    models_doc = document.get("models") or {}
    if not isinstance(models_doc, dict):
        raise PlacementError(f"{source}: models: expected a mapping of model name to settings")
    models = {
        str(name): _settings(value or {}, f"{source}: models.{name}")
        for name, value in models_doc.items()
    }
    pools = _pools(document["pools"], source) if "pools" in document else {}
    for pool in pools.values():
        for model, overrides in pool.models.items():
            merged = {**defaults, **models.get(model, {}), **overrides}
            if merged.get("kind") == "cpu" and "gpus" in merged:
                raise PlacementError(
                    f"{source}: pools.{pool.name}.models.{model}: with the settings it inherits "
                    "it has both kind: cpu and 'gpus', which make no sense together"
                )
    return Placement(source=source, defaults=defaults, models=models, pools=pools)


def _pools(value: Any, source: str) -> dict[str, PoolPlacement]:
    """Validate the ``pools:`` section; present means at least one pool, each with models.

    An empty section is refused rather than read as "no pools": absent means one
    pool loading every model, and an empty one is more likely a mistake than that.
    """
    if not isinstance(value, dict) or not value:
        raise PlacementError(
            f"{source}: pools: expected a non-empty mapping of pool name to "
            "{service, models} (leave the section out for one pool loading every model)"
        )
    pools: dict[str, PoolPlacement] = {}
    services: dict[str, str] = {}
    for name, entry in value.items():
        where = f"{source}: pools.{name}"
        if not isinstance(name, str) or not _DNS_1035.match(name):
            raise PlacementError(
                f"{where}: a pool name must be a DNS-1035 label (a-z, 0-9 and '-', "
                "starting with a letter, at most 63 characters)"
            )
        if not isinstance(entry, dict):
            raise PlacementError(f"{where}: expected a mapping with keys {sorted(_POOL_KEYS)}")
        unknown = set(entry) - _POOL_KEYS
        if unknown:
            raise PlacementError(
                f"{where}: unknown key(s) {sorted(map(str, unknown))}; "
                f"allowed: {sorted(_POOL_KEYS)}"
            )
        service = entry.get("service", f"triton-{name}")
        if not isinstance(service, str) or not _DNS_1035.match(service):
            raise PlacementError(
                f"{where}.service: must be a Service name (a DNS-1035 label: a-z, 0-9 and "
                f"'-', starting with a letter, at most 63 characters), got {service!r}"
            )
        if service in services:
            raise PlacementError(
                f"{where}.service: {service!r} is already the Service of pool {services[service]!r}"
            )
        services[service] = name
        models = entry.get("models")
        if not isinstance(models, dict) or not models:
            raise PlacementError(
                f"{where}.models: expected a non-empty mapping of model name to settings"
            )
        pools[name] = PoolPlacement(
            name=name,
            service=service,
            models={
                str(model): _settings(settings or {}, f"{where}.models.{model}")
                for model, settings in models.items()
            },
        )
    return pools


def _settings(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PlacementError(f"{where}: expected a mapping with keys {sorted(_KEYS)}")
    unknown = set(value) - _KEYS
    if unknown:
        raise PlacementError(
            f"{where}: unknown key(s) {sorted(map(str, unknown))}; allowed: {sorted(_KEYS)}"
        )
    for key in ("count", "cpu_count"):
        if key in value and not _positive_int(value[key]):
            raise PlacementError(f"{where}.{key}: must be a positive integer, got {value[key]!r}")
    if "batching" in value and value["batching"] not in _BATCHING:
        raise PlacementError(
            f"{where}.batching: must be one of {list(_BATCHING)}, got {value['batching']!r}"
        )
    if "kind" in value and value["kind"] not in _KINDS:
        raise PlacementError(f"{where}.kind: must be one of {list(_KINDS)}, got {value['kind']!r}")
    if "gpus" in value:
        gpus = value["gpus"]
        if (
            not isinstance(gpus, list)
            or not gpus
            or not all(isinstance(g, int) and not isinstance(g, bool) and g >= 0 for g in gpus)
            or len(set(gpus)) != len(gpus)
        ):
            raise PlacementError(
                f"{where}.gpus: must be a non-empty list of distinct GPU "
                f"indices (integers >= 0), got {gpus!r}"
            )
        if value.get("kind") == "cpu":
            raise PlacementError(f"{where}: 'gpus' makes no sense with kind: cpu")
    return dict(value)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def instance_groups(
    placement: Placement, model: str, gpus: Sequence[int]
) -> list[model_config_pb2.ModelInstanceGroup]:
    """Return the ``instance_group`` entries for ``model`` on a machine with ``gpus``.

    Args:
        placement: The parsed placement file.
        model: The model's name.
        gpus: The machine's GPU indices (see :func:`detect_gpus`); empty for none.

    Returns:
        One ``KIND_CPU`` group (``cpu_count`` or ``count`` instances) when the model
        is pinned to the CPU or ``gpus`` is empty; otherwise one ``KIND_GPU`` group
        per GPU used, each with ``gpus: [i]`` and ``count`` instances.

    Raises:
        PlacementError: The model lists a GPU index the machine does not have
            (only checked on machines with GPUs: without any, the model falls
            back to the CPU).
    """
    settings = placement.for_model(model)
    group = model_config_pb2.ModelInstanceGroup
    if settings.kind == "cpu" or not gpus:
        count = settings.cpu_count or settings.count
        return [group(kind=group.KIND_CPU, count=count)]
    wanted = settings.gpus if settings.gpus is not None else tuple(gpus)
    missing = [index for index in wanted if index not in gpus]
    if missing:
        raise PlacementError(
            f"{placement.source}: model {model!r} is placed on GPU(s) {missing}, but this "
            f"machine has GPU(s) {list(gpus)}"
        )
    return [group(kind=group.KIND_GPU, count=settings.count, gpus=[index]) for index in wanted]


def detect_gpus() -> list[int]:
    """Return the CUDA indices of the machine's GPUs, as Triton will number them.

    ``TOOLMESH_GPUS`` overrides detection (``"0,1"``, or ``""`` for none).
    Otherwise ``nvidia-smi -L`` is asked, else ``/proc/driver/nvidia/gpus`` is
    counted, else there are none. When ``CUDA_VISIBLE_DEVICES`` is set, CUDA (and
    so Triton) renumbers the visible GPUs from 0, so at most that many are returned.

    Raises:
        PlacementError: ``TOOLMESH_GPUS`` is not a comma-separated list of indices.
    """
    override = os.environ.get(GPUS_ENV)
    if override is not None:
        parts = [p.strip() for p in override.split(",") if p.strip()]
        if not all(p.isdigit() for p in parts):
            raise PlacementError(
                f"{GPUS_ENV} must be GPU indices like '0,1' or empty, got {override!r}"
            )
        return sorted({int(p) for p in parts})
    count = _count_with_nvidia_smi()
    if count is None:
        proc = Path("/proc/driver/nvidia/gpus")
        count = sum(1 for _ in proc.iterdir()) if proc.is_dir() else 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        entries = [e for e in visible.split(",") if e.strip()]
        count = min(count, 0 if entries[:1] == ["-1"] else len(entries))
    return list(range(count))


def _count_with_nvidia_smi() -> int | None:
    """Number of GPUs ``nvidia-smi -L`` lists, or None when it is absent or fails."""
    executable = shutil.which("nvidia-smi")
    if executable is None:
        return None
    try:
        listing = subprocess.run(
            [executable, "-L"], capture_output=True, text=True, timeout=20, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return len(re.findall(r"^GPU \d+:", listing, flags=re.MULTILINE))
