"""Turns a results file into the numbers a cost comparison needs.

Per-function latency statistics (count, mean, stdev, coefficient of variation,
p50, p99) as in the serverless image-pipeline study, task turnaround, wall
time, and cost from a price table of node types, with the projection to
100,000 images.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

__all__ = ["FunctionStats", "Report", "build_report", "load_prices", "percentile"]

PROJECTION_IMAGES = 100_000


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class FunctionStats:
    name: str
    count: int
    mean_s: float
    stdev_s: float
    p50_s: float
    p99_s: float

    @property
    def cv(self) -> float:
        return self.stdev_s / self.mean_s if self.mean_s else 0.0

    @classmethod
    def of(cls, name: str, seconds: Sequence[float]) -> FunctionStats:
        return cls(
            name=name,
            count=len(seconds),
            mean_s=statistics.fmean(seconds),
            stdev_s=statistics.stdev(seconds) if len(seconds) > 1 else 0.0,
            p50_s=percentile(seconds, 50),
            p99_s=percentile(seconds, 99),
        )


@dataclass(frozen=True)
class Report:
    tasks: int
    ok: int
    failed: int
    wall_s: float
    functions: list[FunctionStats]
    turnaround: FunctionStats
    node_types: dict[str, int]
    usd_per_hour: float

    @property
    def cost_usd(self) -> float:
        return self.wall_s / 3600 * self.usd_per_hour

    @property
    def cost_per_task_usd(self) -> float:
        return self.cost_usd / self.tasks if self.tasks else 0.0

    @property
    def projected_usd(self) -> float:
        """Cost of the same program over 100,000 images at this run's throughput."""
        return self.cost_per_task_usd * PROJECTION_IMAGES

    @property
    def tasks_per_second(self) -> float:
        return self.tasks / self.wall_s if self.wall_s else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "tasks": self.tasks,
            "ok": self.ok,
            "failed": self.failed,
            "wall_s": self.wall_s,
            "tasks_per_second": self.tasks_per_second,
            "node_types": self.node_types,
            "usd_per_hour": self.usd_per_hour,
            "cost_usd": self.cost_usd,
            "projected_usd_100k_images": self.projected_usd,
            "turnaround": vars(self.turnaround),
            "functions": [vars(f) | {"cv": f.cv} for f in self.functions],
        }


def load_prices(path: Path | None = None) -> dict[str, float]:
    """Node type → USD per hour, from ``path`` or the bundled table."""
    if path is None:
        text = resources.files("toolmesh.batch").joinpath("prices.yaml").read_text()
    else:
        text = path.read_text()
    document = yaml.safe_load(text) or {}
    node_types = document.get("node_types")
    if not isinstance(node_types, dict):
        raise ValueError(f"{path or 'prices.yaml'}: expected a mapping under 'node_types'")
    return {name: float(spec["usd_per_hour"]) for name, spec in node_types.items()}


def build_report(
    records: Sequence[Mapping[str, Any]],
    node_types: Mapping[str, int],
    prices: Mapping[str, float],
) -> Report:
    """Statistics and cost of a run; ``node_types`` maps a node type to how many were used."""
    if not records:
        raise ValueError("no task records to report on")
    unknown = sorted(set(node_types) - set(prices))
    if unknown:
        raise ValueError(f"unknown node type(s) {unknown}; known: {sorted(prices)}")
    by_function: dict[str, list[float]] = defaultdict(list)
    for record in records:
        for call in record.get("calls", []):
            by_function[call["function"]].append(float(call["end"]) - float(call["start"]))
    wall = max(float(r["end"]) for r in records) - min(float(r["start"]) for r in records)
    return Report(
        tasks=len(records),
        ok=sum(1 for r in records if r["ok"]),
        failed=sum(1 for r in records if not r["ok"]),
        wall_s=wall,
        functions=[FunctionStats.of(name, by_function[name]) for name in sorted(by_function)],
        turnaround=FunctionStats.of("task", [float(r["end"]) - float(r["start"]) for r in records]),
        node_types=dict(node_types),
        usd_per_hour=sum(prices[name] * count for name, count in node_types.items()),
    )
