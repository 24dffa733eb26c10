"""Turns a results file into the numbers a cost comparison needs.

Per-function latency statistics (count, mean, stdev, coefficient of variation,
p50, p99) as in the serverless image-pipeline study, task turnaround, wall
time, and cost from a price table of node types, with the projection to
100,000 images; with a utilisation file (``_utilisation``), mean utilisation
and idle fraction per process group and GPU; and the LLM operating cost of
generating programs: tokens per question × each model's price (``prices.yaml``
``llm_models``), as the DiCE-C paper compares a self-hosted model with an API.
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

from toolmesh.batch._utilisation import UtilisationSummary

__all__ = [
    "FunctionStats",
    "LlmCost",
    "LlmPrice",
    "Report",
    "build_report",
    "llm_costs",
    "load_llm_prices",
    "load_prices",
    "percentile",
]

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
    utilisation: UtilisationSummary | None = None

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
            "utilisation": self.utilisation.as_json() if self.utilisation else None,
        }


def _price_document(path: Path | None) -> dict[str, Any]:
    if path is None:
        text = resources.files("toolmesh.batch").joinpath("prices.yaml").read_text()
    else:
        text = path.read_text()
    document = yaml.safe_load(text) or {}
    if not isinstance(document, dict):
        raise ValueError(f"{path or 'prices.yaml'}: expected a mapping")
    return document


def load_prices(path: Path | None = None) -> dict[str, float]:
    """Node type → USD per hour, from ``path`` or the bundled table."""
    document = _price_document(path)
    node_types = document.get("node_types")
    if not isinstance(node_types, dict):
        raise ValueError(f"{path or 'prices.yaml'}: expected a mapping under 'node_types'")
    return {name: float(spec["usd_per_hour"]) for name, spec in node_types.items()}


@dataclass(frozen=True)
class LlmPrice:
    """One ``llm_models`` row: an API's token prices, or a self-hosted node's hour and speed.

    An API row has ``usd_per_1m_input_tokens`` and ``usd_per_1m_output_tokens``; a
    self-hosted row has ``usd_per_hour`` (the node serving the model) and
    ``tokens_per_second`` (its generation throughput, prompt and completion tokens
    alike, a simplification: prefill is much faster than decoding).
    """

    name: str
    description: str
    usd_per_1m_input_tokens: float | None = None
    usd_per_1m_output_tokens: float | None = None
    usd_per_hour: float | None = None
    tokens_per_second: float | None = None

    @property
    def self_hosted(self) -> bool:
        return self.usd_per_hour is not None

    def usd(self, prompt_tokens: float, completion_tokens: float) -> float:
        """Cost of one question with these token counts."""
        if self.usd_per_hour is not None and self.tokens_per_second:
            seconds = (prompt_tokens + completion_tokens) / self.tokens_per_second
            return seconds / 3600 * self.usd_per_hour
        assert self.usd_per_1m_input_tokens is not None
        assert self.usd_per_1m_output_tokens is not None
        return (
            prompt_tokens * self.usd_per_1m_input_tokens
            + completion_tokens * self.usd_per_1m_output_tokens
        ) / 1e6


@dataclass(frozen=True)
class LlmCost:
    model: str
    description: str
    self_hosted: bool
    usd_per_question: float
    questions: int

    @property
    def usd(self) -> float:
        return self.usd_per_question * self.questions


def load_llm_prices(path: Path | None = None) -> dict[str, LlmPrice]:
    """The ``llm_models`` rows of ``path`` or the bundled table (empty if it has none).

    Raises:
        ValueError: A row is neither an API row nor a self-hosted row.
    """
    rows = _price_document(path).get("llm_models") or {}
    prices = {}
    for name, spec in rows.items():
        api = "usd_per_1m_input_tokens" in spec and "usd_per_1m_output_tokens" in spec
        hosted = "usd_per_hour" in spec and "tokens_per_second" in spec
        if api == hosted:
            raise ValueError(
                f"llm_models.{name}: give either usd_per_1m_input_tokens and "
                "usd_per_1m_output_tokens (an API) or usd_per_hour and tokens_per_second "
                "(self-hosted)"
            )

        def number(key: str, spec: Mapping[str, Any] = spec) -> float | None:
            return float(spec[key]) if key in spec else None

        prices[name] = LlmPrice(
            name=name,
            description=str(spec.get("description", "")),
            usd_per_1m_input_tokens=number("usd_per_1m_input_tokens"),
            usd_per_1m_output_tokens=number("usd_per_1m_output_tokens"),
            usd_per_hour=number("usd_per_hour"),
            tokens_per_second=number("tokens_per_second"),
        )
    return prices


def llm_costs(
    prices: Mapping[str, LlmPrice],
    *,
    prompt_tokens: float,
    completion_tokens: float,
    questions: int,
) -> list[LlmCost]:
    """What ``questions`` questions cost on every model, cheapest first."""
    costs = [
        LlmCost(
            model=price.name,
            description=price.description,
            self_hosted=price.self_hosted,
            usd_per_question=price.usd(prompt_tokens, completion_tokens),
            questions=questions,
        )
        for price in prices.values()
    ]
    return sorted(costs, key=lambda c: c.usd_per_question)


def build_report(
    records: Sequence[Mapping[str, Any]],
    node_types: Mapping[str, int],
    prices: Mapping[str, float],
    *,
    utilisation: UtilisationSummary | None = None,
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
        utilisation=utilisation,
    )
