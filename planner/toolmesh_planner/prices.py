"""Node types and their prices: the batch report's ``prices.yaml``, read for planning.

The planner reads the same file ``toolmesh report`` charges runs with (the client's
``toolmesh/batch/prices.yaml`` unless another is given), plus the optional field
``gpu_product`` (the ``nvidia.com/gpu.product`` node label the overlay pins a
pool to; a node type without it is a CPU node) and ``memory_gb`` (the device
memory a node's model instances must fit in).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

__all__ = ["NodePrice", "load_node_prices"]


@dataclass(frozen=True)
class NodePrice:
    name: str
    usd_per_hour: float
    description: str = ""
    gpu_product: str | None = None
    memory_gb: float | None = None


def load_node_prices(path: Path | None = None) -> dict[str, NodePrice]:
    """Every node type of the price file.

    Raises:
        ValueError: the file is not a price table.
    """
    source = str(path) if path is not None else "prices.yaml"
    if path is None:
        text = resources.files("toolmesh.batch").joinpath("prices.yaml").read_text()
    else:
        text = path.read_text(encoding="utf-8")
    document = yaml.safe_load(text)
    node_types = document.get("node_types") if isinstance(document, dict) else None
    if not isinstance(node_types, dict):
        raise ValueError(f"{source}: expected a mapping under 'node_types'")
    prices = {}
    for name, spec in node_types.items():
        try:
            price = float(spec["usd_per_hour"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{source}: node type {name!r} needs a number usd_per_hour") from exc
        if price < 0:
            raise ValueError(f"{source}: node type {name!r} has a negative price")
        product = spec.get("gpu_product")
        memory = spec.get("memory_gb")
        prices[str(name)] = NodePrice(
            str(name),
            price,
            str(spec.get("description", "")),
            str(product) if product else None,
            float(memory) if memory is not None else None,
        )
    return prices
