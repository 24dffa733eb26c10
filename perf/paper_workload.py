"""The DiCE-C workload: two programs × N tasks over 30 randomly assigned images, baseline vs toolmesh.

    .venv/bin/python -m perf.paper_workload                  # 1000 tasks each (the paper's)
    .venv/bin/python -m perf.paper_workload --tasks 60       # a quick run
    .venv/bin/python -m perf.paper_workload --small          # what the test suite runs

Programs: ``accident`` (the paper's query: find vehicles, then per vehicle VQA
colour and make/model and image-text matching damaged / overturned, all
concurrent) and ``street`` (find people and vehicles, then resize and greyscale
per vehicle). Each task gets one of the images at random (seeded), as the
paper's 1000 tasks over 30 images.

Baseline: the paper's monolith, every model in this process (the same model code
Triton runs), tasks one after another. toolmesh: the same program through the
gateway and Triton, tasks ``--concurrency`` at a time. During every run CPU is
sampled per process group (Triton, gateway, client; psutil) and GPUs through
NVML where present. Writes perf/results/paper_workload.{json,md} (and the README
table), paper_timeline.png (first 50 tasks of the accident program, baseline
and toolmesh on one time axis) and paper_utilisation.png.

Weights: ``find`` is the real CenterNet detector; VQA (BLIP) and ITM (BLIP-ITM)
are tiny random-weight models of the real architectures built here (no model hub
on this machine), so the transformer calls cost far less than real ones and
their answers are meaningless: the runs measure the serving path. The paper ran
GPU models on A100/A6000/A4000 nodes, where distributing calls keeps a GPU busy;
here everything shares the machine's CPU cores, so the cost columns apply the
paper's node prices to times measured on CPUs to show how the ratio is
computed, not what a GPU cluster would cost.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from perf._harness import RESULTS, write_results
from toolmesh import GrpcTransport
from toolmesh.batch import (
    BatchConfig,
    UtilisationSampler,
    build_report,
    load_prices,
    load_utilisation,
    read_results,
    run_batch,
    summarise_utilisation,
)
from toolmesh.batch._plots import plot_timelines, plot_utilisation
from toolmesh.data import ACCIDENT_REPORT, STREET_FRAMES, STREET_REPORT
from toolmesh_local.inprocess import InProcessTransport
from toolmesh_local.mesh import LocalMesh
from toolmesh_models.store import ModelStore

#: The DiCE-C paper's figures (Rao et al., IEEE CLOUD 2025; seeds/dice-c-cloud2025.md).
PAPER = {
    "tasks": 1000,
    "images": 30,
    "baseline_min": 141,
    "dice_c_min": 79,
    "dice_c_cheap_min": 68,
    "identical_hw_saving": 0.32,
    "identical_hw_saving_1_node": 0.44,
    "cheap_hw_saving": 0.72,
}

#: Program name → (file, the functions its mesh serves, the tiny models it needs).
PROGRAMS: dict[str, tuple[Path, list[str], list[str]]] = {
    "accident": (
        ACCIDENT_REPORT,
        ["find", "simple_query", "verify_property"],
        ["blip-vqa", "blip-itm"],
    ),
    "street": (STREET_REPORT, ["find", "resize", "greyscale"], []),
}

MACHINE = f"{platform.machine()}, {os.cpu_count()} cores, CPU only"
WEIGHTS = "find: real CenterNet; simple_query / verify_property: tiny random BLIP weights"
MAX_MESSAGE = 64 * 2**20


def images_dir(work: Path, count: int) -> Path:
    """``count`` bundled street frames in a folder of their own."""
    folder = work / "images"
    folder.mkdir(exist_ok=True)
    for path in sorted(STREET_FRAMES.glob("*.jpg"))[:count]:
        shutil.copy(path, folder / path.name)
    return folder


def model_store(work: Path, names: Sequence[str]) -> Path:
    """A model store holding tiny random-weight models ``names`` (built once per store)."""
    from tests.triton_models.tiny_models import install_tiny_models

    store = ModelStore(work / "store")
    missing = [n for n in names if not (store.root / n).exists()]
    if missing:
        install_tiny_models(store, missing)
    return store.root


@contextmanager
def model_dir(store: Path) -> Iterator[None]:
    """The in-process baseline loads weights from ``TOOLMESH_MODEL_DIR``, as Triton's models do."""
    before = os.environ.get("TOOLMESH_MODEL_DIR")
    os.environ["TOOLMESH_MODEL_DIR"] = str(store)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TOOLMESH_MODEL_DIR", None)
        else:
            os.environ["TOOLMESH_MODEL_DIR"] = before


def placement_file(work: Path, instances: int) -> Path:
    """Every model of the mesh with ``instances`` CPU instances (one per core by default)."""
    path = work / f"placement-{instances}.yaml"
    path.write_text(f"defaults: {{count: {instances}}}\n")
    return path


def mesh_groups(mesh: LocalMesh) -> dict[str, list[int]]:
    """The process groups of a local mesh and of this (client) process."""
    assert mesh.gateway is not None
    return {
        "triton": [t.pid for t in mesh.tritons if t.pid is not None],
        "gateway": [mesh.gateway.pid],
        "client": [os.getpid()],
    }


@dataclass
class Run:
    """One measured run: its results and utilisation files and its wall time."""

    program: str
    mode: str
    tasks: int
    concurrency: int
    seconds: float
    results: Path
    utilisation: Path

    def records(self) -> list[dict[str, Any]]:
        return read_results(self.results)

    def samples(self) -> list[dict[str, Any]]:
        return load_utilisation(self.utilisation)


def measure(
    config: BatchConfig,
    transport: Callable[[], Any],
    groups: dict[str, list[int]],
    utilisation: Path,
) -> float:
    """Run the batch with utilisation sampled; every task must finish without an error.

    ``transport`` makes the transport inside the run's event loop (a gRPC channel
    belongs to the loop it was made in).
    """

    async def go() -> Any:
        return await run_batch(config, transport())

    async def warm_up() -> None:
        # Both sides start with their models loaded: the mesh loads them when it starts,
        # the baseline on first use, which must not count as the first task's work.
        warm = replace(config, tasks=1, out=config.out.with_suffix(".warm-up.jsonl"), seed=None)
        await run_batch(warm, transport())

    asyncio.run(warm_up())
    with UtilisationSampler(utilisation, groups, interval=0.25):
        summary = asyncio.run(go())
    if summary.unfinished or summary.failed:
        failed = [r for r in read_results(config.out) if not r["ok"]][:3]
        raise RuntimeError(f"{config.label}: {summary}; first failures: {failed}")
    return summary.seconds


def run_program(
    program: str,
    work: Path,
    images: Path,
    *,
    tasks: int,
    seed: int,
    concurrency: int,
    instances: int,
) -> list[Run]:
    """Baseline then toolmesh for one program; returns both runs."""
    path, functions, tiny = PROGRAMS[program]
    store = model_store(work, tiny)
    runs = []

    def config(mode: str, concurrency: int) -> BatchConfig:
        return BatchConfig(
            path, images, tasks, work / f"{program}-{mode}.jsonl", concurrency,
            label=mode, seed=seed,
        )  # fmt: skip

    base = config("baseline", 1)
    with model_dir(store):
        seconds = measure(
            base,
            InProcessTransport,
            {"client": [os.getpid()]},
            work / f"{program}-baseline.util.jsonl",
        )
    runs.append(
        Run(
            program,
            "baseline",
            tasks,
            1,
            seconds,
            base.out,
            work / f"{program}-baseline.util.jsonl",
        )
    )
    print(f"{program} baseline: {tasks} tasks in {seconds:.1f}s", flush=True)
    mesh = LocalMesh(
        run_dir=work / f"mesh-{program}",
        placement=placement_file(work, instances),
        models=functions,
        env={"TOOLMESH_MODEL_DIR": str(store)},
    )
    with mesh:
        cfg = config("toolmesh", concurrency)
        util = work / f"{program}-toolmesh.util.jsonl"
        seconds = measure(
            cfg,
            lambda: GrpcTransport(mesh.address, max_message_bytes=MAX_MESSAGE),
            mesh_groups(mesh),
            util,
        )
    runs.append(Run(program, "toolmesh", tasks, concurrency, seconds, cfg.out, util))
    print(f"{program} toolmesh c={concurrency}: {tasks} tasks in {seconds:.1f}s", flush=True)
    return runs


def summarise(runs: Sequence[Run], prices: dict[str, float]) -> list[dict[str, Any]]:
    """One row per run: wall time, throughput, cost, per-function stats and utilisation."""
    rows = []
    for run in runs:
        samples = run.samples()
        report = build_report(
            run.records(),
            {"cpu-2core": 1},
            prices,
            utilisation=summarise_utilisation(samples) if samples else None,
        )
        baseline = next(r for r in runs if r.program == run.program and r.mode == "baseline")
        rows.append(
            {
                "program": run.program,
                "mode": run.mode,
                "tasks": run.tasks,
                "concurrency": run.concurrency,
                "seconds": run.seconds,
                "tasks_per_second": run.tasks / run.seconds,
                "vs_baseline": baseline.seconds / run.seconds,
                "calls": sum(f.count for f in report.functions),
                "cost_usd_cpu_2core": run.seconds / 3600 * prices["cpu-2core"],
                "projected_usd_100k_images": 100_000 * run.seconds / run.tasks / 3600
                * prices["cpu-2core"],
                "report": report.as_json(),
            }
        )  # fmt: skip
    return rows


def comparison(rows: Sequence[dict[str, Any]], prices: dict[str, float]) -> dict[str, Any]:
    """Per program: speed-up and the paper's two cost savings applied to our times."""
    out: dict[str, Any] = {}
    for program in dict.fromkeys(r["program"] for r in rows):
        base = next(r for r in rows if r["program"] == program and r["mode"] == "baseline")
        mesh = next(r for r in rows if r["program"] == program and r["mode"] == "toolmesh")
        out[program] = {
            "speedup": base["seconds"] / mesh["seconds"],
            "identical_hw_saving": 1 - mesh["seconds"] / base["seconds"],
            "cheap_hw_saving": 1
            - mesh["seconds"] * prices["a6000+a4000"] / (base["seconds"] * prices["a100"]),
        }
    return out


def utilisation_cell(row: dict[str, Any], group: str) -> str:
    use = row["report"]["utilisation"]
    found = next((g for g in use["groups"] if g["name"] == group), None) if use else None
    if found is None:
        return "–"
    return f"{found['mean']:.0f} % ({found['idle_fraction']:.0%} idle)"


def table(rows: Sequence[dict[str, Any]], compared: dict[str, Any], images: int) -> str:
    lines = [
        f"| program | run | tasks (over {images} images, random) | concurrency | wall (s) | tasks/s | vs baseline | calls | CPU Triton | CPU gateway | CPU client | whole machine | cost on cpu-2core | per 100k images |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        use = r["report"]["utilisation"]
        machine = f"{use['machine']['mean']:.0f} %" if use else "–"
        lines.append(
            f"| {r['program']} | {r['mode']} | {r['tasks']} | {r['concurrency']} | "
            f"{r['seconds']:.1f} | {r['tasks_per_second']:.2f} | {r['vs_baseline']:.2f}× | "
            f"{r['calls']} | {utilisation_cell(r, 'triton')} | {utilisation_cell(r, 'gateway')} | "
            f"{utilisation_cell(r, 'client')} | {machine} | "
            f"${r['cost_usd_cpu_2core']:.4g} | ${r['projected_usd_100k_images']:.2f} |"
        )
    lines += [
        "",
        "| | paper (accident query, A100 GPUs, 1 node) | here: accident | here: street |",
        "|---|---:|---:|---:|",
    ]
    acc, street = compared.get("accident", {}), compared.get("street", {})

    def cell(values: dict[str, Any], key: str, fmt: str) -> str:
        return format(values[key], fmt) if key in values else "–"

    lines += [
        f"| speed-up vs baseline | {PAPER['baseline_min'] / PAPER['dice_c_min']:.2f}× (141 → 79 min) | "
        f"{cell(acc, 'speedup', '.2f')}× | {cell(street, 'speedup', '.2f')}× |",
        f"| cost saving, identical hardware | {PAPER['identical_hw_saving_1_node']:.0%} (1 node; "
        f"{PAPER['identical_hw_saving']:.0%} average over 1–8 nodes) | "
        f"{cell(acc, 'identical_hw_saving', '.0%')} | {cell(street, 'identical_hw_saving', '.0%')} |",
        f"| cost saving, A6000+A4000 ($1.3/h) vs A100 ($2.2/h) | up to {PAPER['cheap_hw_saving']:.0%} | "
        f"{cell(acc, 'cheap_hw_saving', '.0%')} | {cell(street, 'cheap_hw_saving', '.0%')} |",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m perf.paper_workload",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--tasks", type=int, default=1000, help="tasks per program and mode")
    parser.add_argument("--images", type=int, default=30)
    parser.add_argument("--seed", type=int, default=2025, help="seed of the image assignment")
    parser.add_argument("--programs", default="accident,street", help=f"of {sorted(PROGRAMS)}")
    parser.add_argument("--concurrency", type=int, default=16, help="toolmesh tasks in flight")
    parser.add_argument(
        "--instances", type=int, default=os.cpu_count() or 1, help="CPU instances of every model"
    )
    parser.add_argument("--first-tasks", type=int, default=50, help="tasks in the timeline")
    parser.add_argument(
        "--small", action="store_true", help="a few tasks over a few images (the test suite's)"
    )
    parser.add_argument(
        "--work", type=Path, default=None, help="keep run files here (default: a temp folder)"
    )
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="where JSON, markdown and figures go"
    )
    args = parser.parse_args(argv)
    if args.small:
        args.tasks, args.images, args.first_tasks = min(args.tasks, 6), min(args.images, 3), 6
    programs = [p.strip() for p in args.programs.split(",") if p.strip()]
    unknown = sorted(set(programs) - set(PROGRAMS))
    if unknown:
        parser.error(f"unknown program(s) {unknown}; known: {sorted(PROGRAMS)}")
    prices = load_prices()
    work = args.work or Path(__import__("tempfile").mkdtemp(prefix="paper-workload-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        images = images_dir(work, args.images)
        runs = []
        for program in programs:
            runs += run_program(
                program, work, images, tasks=args.tasks, seed=args.seed,
                concurrency=args.concurrency, instances=args.instances,
            )  # fmt: skip
        rows = summarise(runs, prices)
        compared = comparison(rows, prices)
        figure_program = "accident" if "accident" in programs else programs[0]
        chosen = [r for r in runs if r.program == figure_program]
        configuration = (
            f"{figure_program} program, {args.tasks} tasks over {args.images} images; "
            f"toolmesh c={args.concurrency}, {args.instances} instances a model; {MACHINE}"
        )
        args.results.mkdir(parents=True, exist_ok=True)
        plot_timelines(
            {f"{r.mode} ({r.seconds:.0f}s for all {r.tasks})": r.records() for r in chosen},
            args.results / "paper_timeline.png",
            first_tasks=args.first_tasks,
            title=f"Execution pattern, first {args.first_tasks} tasks: {configuration}\n{WEIGHTS}",
        )
        plot_utilisation(
            {f"{r.program} {r.mode}": r.samples() for r in runs},
            args.results / "paper_utilisation.png",
            title=f"CPU during every run: {args.tasks} tasks each over {args.images} images, "
            f"toolmesh c={args.concurrency}, {args.instances} instances a model; {MACHINE}\n"
            f"{WEIGHTS}",
        )
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    markdown = table(rows, compared, args.images)
    payload = {
        "benchmark": "paper_workload",
        "date": time.strftime("%Y-%m-%d"),
        "machine": MACHINE,
        "weights": WEIGHTS,
        "tasks": args.tasks,
        "images": args.images,
        "seed": args.seed,
        "concurrency": args.concurrency,
        "instances": args.instances,
        "rows": rows,
        "comparison": compared,
        "paper": PAPER,
    }
    if args.results == RESULTS:
        write_results("paper_workload", payload, markdown)
    else:
        import json

        (args.results / "paper_workload.json").write_text(json.dumps(payload, indent=2) + "\n")
        (args.results / "paper_workload.md").write_text(markdown + "\n")
    print(markdown)


if __name__ == "__main__":
    main()
