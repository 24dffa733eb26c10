"""The Triton pools of a cluster, as the placement file names them.

In a cluster each GPU type is one pool: a Deployment of Triton pods behind a
Service, loading only the models the placement file's ``pools:`` section gives it
(``toolmesh_models`` renders each pool's repository from the same file). The
gateway reads that section, and only that section, of the very file the pools are
rendered from (the overlay mounts one ConfigMap into both), so what the gateway
expects a pool to serve cannot drift from what the pool loads. It needs two things
per pool: the Service whose EndpointSlices list the pool's pods, and the models,
so that a Function no pool serves is refused at start-up, naming it.

The instance settings under each model are the models package's business; this
module neither reads nor validates them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["DEFAULT_PORT_NAME", "PoolSpec", "load_pools", "parse_pools"]

#: The Service port the gateway calls on each pod (Triton's gRPC port, by name).
DEFAULT_PORT_NAME = "grpc"
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True, slots=True)
class PoolSpec:
    """One Triton pool: where to find its pods and what they load."""

    name: str
    service: str
    models: frozenset[str]
    port_name: str = DEFAULT_PORT_NAME


def load_pools(path: Path) -> list[PoolSpec]:
    """The pools of a placement file; errors name the file and the field.

    Raises:
        ValueError: The file cannot be read, is not YAML, has no ``pools:`` section,
            or a pool is malformed.
    """
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read the placement file: {exc}") from exc
    return parse_pools(document, source=str(path))


def parse_pools(document: Any, *, source: str = "placement") -> list[PoolSpec]:
    """The ``pools:`` section of an already-loaded placement document (see :func:`load_pools`)."""
    pools = document.get("pools") if isinstance(document, Mapping) else None
    if not isinstance(pools, Mapping) or not pools:
        raise ValueError(
            f"{source}: endpoint discovery needs a 'pools:' section naming each pool's "
            "models (see the format at the top of toolmesh_models' placement.yaml)"
        )
    specs = []
    services: dict[str, str] = {}
    for name, entry in pools.items():
        where = f"{source}: pools.{name}"
        if not isinstance(name, str) or not _DNS_LABEL.match(name):
            raise ValueError(f"{where}: a pool name must be a DNS label (a-z, 0-9, '-')")
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where}: expected a mapping with 'models' (and 'service')")
        service = entry.get("service", f"triton-{name}")
        if not isinstance(service, str) or not _DNS_LABEL.match(service):
            raise ValueError(f"{where}.service: must be a Service name, got {service!r}")
        if service in services:
            raise ValueError(f"{where}.service: {service!r} is also pool {services[service]!r}'s")
        services[service] = name
        models = entry.get("models")
        if not isinstance(models, Mapping) or not models:
            raise ValueError(f"{where}.models: expected a non-empty mapping of model names")
        specs.append(PoolSpec(name, service, frozenset(str(m) for m in models)))
    return specs
