"""PNG pictures of a run: the execution timeline and the cost per node type."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from toolmesh._extensions import missing

__all__ = ["plot_costs", "plot_timeline"]


def _pyplot() -> Any:
    """matplotlib's pyplot on the file-only backend; an optional dependency of the client."""
    try:
        import matplotlib
    except ImportError as exc:
        raise missing("plots", "--plots") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_timeline(
    records: Sequence[Mapping[str, Any]], path: Path, *, first_tasks: int = 50
) -> Path:
    """One row per function, one bar per call, for the first tasks (as the paper's figure)."""
    plt = _pyplot()

    chosen = sorted(records, key=lambda r: r["task"])[:first_tasks]
    calls = sorted((c for r in chosen for c in r.get("calls", [])), key=lambda c: c["start"])
    origin = min(float(r["start"]) for r in chosen)
    functions = sorted({c["function"] for c in calls})
    # Concurrent calls of one function get their own lanes, so overlap stays visible.
    lanes: dict[str, list[float]] = {name: [] for name in functions}
    placed = []
    for call in calls:
        ends = lanes[call["function"]]
        lane = next((i for i, end in enumerate(ends) if end <= call["start"]), len(ends))
        if lane == len(ends):
            ends.append(0.0)
        ends[lane] = call["end"]
        placed.append((call, lane))
    base, offset = {}, 0
    for name in functions:
        base[name] = offset
        offset += len(lanes[name]) + 1
    figure, axes = plt.subplots(figsize=(11, 1.5 + 0.12 * offset))
    colours = plt.get_cmap("tab10")
    for call, lane in placed:
        axes.barh(
            base[call["function"]] + lane,
            float(call["end"]) - float(call["start"]),
            left=float(call["start"]) - origin,
            height=0.8,
            color=colours(functions.index(call["function"]) % 10),
            edgecolor="black",
            linewidth=0.2,
        )
    axes.set_yticks(
        [base[n] + (len(lanes[n]) - 1) / 2 for n in functions],
        [f"{n} ({len(lanes[n])} lanes)" for n in functions],
    )
    axes.invert_yaxis()
    axes.set_xlabel("seconds since the first task started")
    axes.set_title(f"Execution pattern (first {len(chosen)} tasks, {len(calls)} calls)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_costs(costs: Mapping[str, float], path: Path, *, title: str) -> Path:
    """A bar per node type (or per run) with its cost in USD."""
    plt = _pyplot()

    figure, axes = plt.subplots(figsize=(7, 3.5))
    names = list(costs)
    bars = axes.bar(names, [costs[n] for n in names], color="#4c72b0")
    axes.bar_label(bars, labels=[f"${costs[n]:.4g}" for n in names])
    axes.set_ylabel("USD")
    axes.set_title(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
