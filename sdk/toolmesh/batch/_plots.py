"""PNG pictures of runs: execution timelines, utilisation, per-function stats and costs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from toolmesh._extensions import missing

__all__ = [
    "plot_costs",
    "plot_function_stats",
    "plot_timeline",
    "plot_timelines",
    "plot_utilisation",
]


def _pyplot() -> Any:
    """matplotlib's pyplot on the file-only backend; an optional dependency of the client."""
    try:
        import matplotlib
    except ImportError as exc:
        raise missing("plots", "--plots") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _lanes(
    records: Sequence[Mapping[str, Any]], first_tasks: int
) -> tuple[list[tuple[Mapping[str, Any], int]], dict[str, int], dict[str, int], float, int]:
    """Calls of the first tasks placed in lanes: concurrent calls of one function get their
    own lanes, so overlap stays visible. Returns the placed calls, each function's first
    lane, its lane count, the first task's start and the number of tasks."""
    chosen = sorted(records, key=lambda r: r["task"])[:first_tasks]
    calls = sorted((c for r in chosen for c in r.get("calls", [])), key=lambda c: c["start"])
    origin = min(float(r["start"]) for r in chosen)
    functions = sorted({c["function"] for c in calls})
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
    return placed, base, {n: len(v) for n, v in lanes.items()}, origin, len(chosen)


def _draw_timeline(
    axes: Any, plt: Any, records: Sequence[Mapping[str, Any]], first_tasks: int, colours: list[str]
) -> str:
    placed, base, counts, origin, tasks = _lanes(records, first_tasks)
    for call, lane in placed:
        axes.barh(
            base[call["function"]] + lane,
            float(call["end"]) - float(call["start"]),
            left=float(call["start"]) - origin,
            height=0.8,
            color=plt.get_cmap("tab10")(colours.index(call["function"]) % 10),
            edgecolor="black",
            linewidth=0.2,
        )
    axes.set_yticks(
        [base[n] + (counts[n] - 1) / 2 for n in base],
        [f"{n} ({counts[n]} lanes)" for n in base],
    )
    axes.invert_yaxis()
    return f"first {tasks} tasks, {len(placed)} calls"


def _draw_tasks(
    axes: Any, plt: Any, records: Sequence[Mapping[str, Any]], first_tasks: int, colours: list[str]
) -> str:
    """One row per task, its calls as bars; a task's concurrent calls share its row in thin lanes."""
    chosen = sorted(records, key=lambda r: r["task"])[:first_tasks]
    origin = min(float(r["start"]) for r in chosen)
    count = 0
    for row, record in enumerate(chosen):
        calls = sorted(record.get("calls", []), key=lambda c: c["start"])
        ends: list[float] = []
        placed = []
        for call in calls:
            lane = next((i for i, end in enumerate(ends) if end <= call["start"]), len(ends))
            if lane == len(ends):
                ends.append(0.0)
            ends[lane] = call["end"]
            placed.append((call, lane))
        height = 0.8 / max(1, len(ends))
        for call, lane in placed:
            axes.barh(
                row - 0.4 + (lane + 0.5) * height,
                float(call["end"]) - float(call["start"]),
                left=float(call["start"]) - origin,
                height=height,
                color=plt.get_cmap("tab10")(colours.index(call["function"]) % 10),
                linewidth=0,
            )
        count += len(calls)
    axes.set_ylim(len(chosen) - 0.5, -0.5)
    axes.set_ylabel("task")
    return f"first {len(chosen)} tasks, {count} calls"


def plot_timeline(
    records: Sequence[Mapping[str, Any]], path: Path, *, first_tasks: int = 50
) -> Path:
    """One row per function, one bar per call, for the first tasks (as the paper's figure)."""
    plt = _pyplot()

    colours = sorted({c["function"] for r in records for c in r.get("calls", [])})
    _, base, counts, _, _ = _lanes(records, first_tasks)
    figure, axes = plt.subplots(figsize=(11, 1.5 + 0.12 * (sum(counts.values()) + len(base))))
    what = _draw_timeline(axes, plt, records, first_tasks, colours)
    axes.set_xlabel("seconds since the first task started")
    axes.set_title(f"Execution pattern ({what})")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_timelines(
    runs: Mapping[str, Sequence[Mapping[str, Any]]],
    path: Path,
    *,
    first_tasks: int = 50,
    title: str = "Execution pattern",
) -> Path:
    """The first tasks of several runs (baseline, toolmesh) one above the other, one time axis.

    Each task is a row and each call a bar coloured by function, so the
    monolith's staircase (one call at a time) and the mesh's overlapping calls
    and tasks read at a glance, as in the paper's execution-pattern figure; the
    shared axis shows how long each took to get through the same tasks.
    """
    plt = _pyplot()
    from matplotlib.patches import Patch

    colours = sorted(
        {c["function"] for rs in runs.values() for r in rs for c in r.get("calls", [])}
    )
    figure, axes_list = plt.subplots(
        len(runs), 1, figsize=(11, 1.0 + 3.6 * len(runs)), sharex=True, squeeze=False
    )
    for axes, (name, records) in zip(axes_list[:, 0], runs.items(), strict=True):
        what = _draw_tasks(axes, plt, records, first_tasks, colours)
        axes.set_title(f"{name}: {what}", fontsize=10)
    axes_list[0, 0].legend(
        handles=[
            Patch(color=plt.get_cmap("tab10")(i % 10), label=n) for i, n in enumerate(colours)
        ],
        loc="upper right",
        fontsize=8,
    )
    axes_list[-1, 0].set_xlabel("seconds since the run's first task started")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_utilisation(
    runs: Mapping[str, Sequence[Mapping[str, Any]]],
    path: Path,
    *,
    title: str = "Utilisation",
) -> Path:
    """CPU per process group (and GPU utilisation, when sampled) over time, one panel a run.

    CPU is in percent of one core, so the machine's ceiling (``cores`` × 100 %) is
    drawn as a dashed line; time axes are shared so runs compare at a glance.
    """
    plt = _pyplot()

    has_gpu = any(s.get("gpus") for samples in runs.values() for s in samples)
    columns = 2 if has_gpu else 1
    figure, axes_grid = plt.subplots(
        len(runs), columns, figsize=(11, 0.6 + 2.4 * len(runs)), sharex=True, squeeze=False
    )
    for row, (name, samples) in enumerate(runs.items()):
        axes = axes_grid[row, 0]
        if not samples:
            axes.set_title(f"{name}: no samples", fontsize=10)
            continue
        origin = float(samples[0]["t"])
        t = [float(s["t"]) - origin for s in samples]
        groups = sorted({g for s in samples for g in s["cpu"]})
        for group in groups:
            axes.plot(t, [float(s["cpu"].get(group, 0.0)) for s in samples], label=group)
        cores = int(samples[0].get("cores", 1))
        axes.plot(
            t,
            [float(s["machine"]) * cores for s in samples],
            color="grey",
            linewidth=0.8,
            label="whole machine",
        )
        axes.axhline(100 * cores, color="black", linestyle="--", linewidth=0.6)
        axes.set_ylabel("CPU (% of a core)")
        axes.set_ylim(0, 100 * cores * 1.08)
        axes.set_title(f"{name}: CPU per process group" if name else "CPU", fontsize=10)
        axes.legend(loc="upper right", fontsize=7, ncol=len(groups) + 1)
        if has_gpu:
            gpu_axes = axes_grid[row, 1]
            count = max(len(s.get("gpus", [])) for s in samples)
            for index in range(count):
                points = [(tt, s["gpus"][index]) for tt, s in zip(t, samples, strict=True)
                          if len(s.get("gpus", [])) > index]  # fmt: skip
                gpu_axes.plot([p[0] for p in points], [p[1]["util"] for p in points],
                              label=f"gpu{index} util")  # fmt: skip
            gpu_axes.set_ylim(0, 105)
            gpu_axes.set_ylabel("GPU utilisation (%)")
            gpu_axes.set_title(f"{name}: GPU" if count else f"{name}: no GPU sampled", fontsize=10)
            if count:
                gpu_axes.legend(loc="upper right", fontsize=7)
    for axes in axes_grid[-1]:
        axes.set_xlabel("seconds since sampling started")
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_function_stats(
    series: Mapping[str, Mapping[str, tuple[float, float]]],
    path: Path,
    *,
    title: str,
    ylabel: str = "ms",
) -> Path:
    """Bars at each function's mean with ± one standard deviation as error bars.

    ``series`` maps a run (e.g. "toolmesh", "baseline") to function → (mean, stdev);
    several runs are drawn as grouped bars.
    """
    plt = _pyplot()

    names = list(dict.fromkeys(n for stats in series.values() for n in stats))
    width = 0.8 / max(1, len(series))
    figure, axes = plt.subplots(figsize=(9, 4))
    for index, (label, stats) in enumerate(series.items()):
        positions = [i + (index - (len(series) - 1) / 2) * width for i in range(len(names))]
        means = [stats.get(n, (0.0, 0.0))[0] for n in names]
        bars = axes.bar(
            positions,
            means,
            width,
            yerr=[stats.get(n, (0.0, 0.0))[1] for n in names],
            capsize=4,
            label=label,
        )
        axes.bar_label(bars, labels=[f"{m:.1f}" for m in means], padding=2, fontsize=7)
    axes.set_xticks(range(len(names)), names)
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize=10)
    if len(series) > 1:
        axes.legend(fontsize=8)
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
