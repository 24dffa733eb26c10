"""The serverless image-pipeline proposal's study: five functions in sequence, ≥ 100 runs on one image.

    .venv/bin/python -m perf.image_pipeline               # 100 runs (the proposal's minimum)
    .venv/bin/python -m perf.image_pipeline --small       # what the test suite runs

The pipeline (seeds/serverless-image-pipeline-proposal.md): ``greyscale`` →
``resize`` to 800×600 → ``color_depth`` 10 → 8 bit → ``rotate`` 90° →
``convert_format`` to PNG, each a toolmesh function called through the gateway
(and, for comparison, through the in-process baseline), on the same street frame
every run. Between ``resize`` and ``color_depth`` the client widens the 8-bit
samples to 10-bit ones in 16-bit containers (``v << 2 | v >> 6``, exact) so that
the 10 → 8 bit step gets the deep data it is defined for; that NumPy step is timed
apart as ``widen (client)`` and counts in the turnaround, not as a function.

Reported as the proposal asks: per function mean, standard deviation and
coefficient of variation of the client-observed latency, the average pipeline
turnaround, and the cost of 100,000 images at one pipeline at a time on a node
of each type in ``prices.yaml`` (``cpu-2core``: the machine measured; the GPU
rows only apply that node's price to these CPU times). A last run keeps
``--concurrency`` pipelines in flight through toolmesh for the rate a server of
them sustains and its cost per 100,000 images (the in-process baseline is serial
by construction). Writes
perf/results/image_pipeline.{json,md}, the README table and
perf/results/image_pipeline.png (bars with ± one standard deviation).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import toolmesh
from perf._harness import RESULTS, write_results
from perf.paper_workload import MACHINE, placement_file
from toolmesh.batch import load_prices
from toolmesh.batch._plots import plot_function_stats
from toolmesh.data import STREET_FRAMES
from toolmesh_local.inprocess import InProcessTransport
from toolmesh_local.mesh import LocalMesh

STEPS = ["greyscale", "resize", "color_depth", "rotate", "convert_format"]
WIDEN = "widen (client)"
PROJECTION = 100_000


def widen_to_10_bit(image: Any) -> np.ndarray:
    """8-bit samples as exact 10-bit ones (0..1023) in an H×W×1 uint16 array."""
    array = np.asarray(image).astype(np.uint16)
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    return (array << 2) | (array >> 6)


async def pipeline(client: toolmesh.Client, frame: bytes, timings: dict[str, list[float]]) -> float:
    """One run of the five steps; appends each step's milliseconds; returns the turnaround."""
    started = time.perf_counter()

    async def step(name: str, **arguments: Any) -> Any:
        t0 = time.perf_counter()
        result = await client.call(name, **arguments)
        timings[name].append((time.perf_counter() - t0) * 1000)
        return result

    grey = await step("greyscale", image=frame)
    small = await step("resize", image=grey, width=800, height=600)
    t0 = time.perf_counter()
    deep = widen_to_10_bit(small)
    timings[WIDEN].append((time.perf_counter() - t0) * 1000)
    eight = await step("color_depth", image=deep, bits=10)
    turned = await step("rotate", image=eight, angle=90)
    encoded = await step("convert_format", image=turned, format="png")
    if encoded["media_type"] != "image/png" or not encoded["data"].startswith(b"\x89PNG"):
        raise RuntimeError(f"convert_format returned {encoded['media_type']}, not a PNG")
    return (time.perf_counter() - started) * 1000


def stats(samples: Sequence[float]) -> dict[str, Any]:
    mean = statistics.fmean(samples)
    stdev = statistics.stdev(samples) if len(samples) > 1 else 0.0
    return {
        "mean_ms": mean,
        "stdev_ms": stdev,
        "cv": stdev / mean if mean else 0.0,
        "samples_ms": list(samples),
    }


async def study(client: toolmesh.Client, frame: bytes, runs: int, warm_up: int) -> dict[str, Any]:
    """``warm_up`` discarded runs, then ``runs`` measured ones, one after another."""
    for _ in range(warm_up):
        await pipeline(client, frame, {name: [] for name in [*STEPS, WIDEN]})
    timings: dict[str, list[float]] = {name: [] for name in [*STEPS, WIDEN]}
    turnaround = [await pipeline(client, frame, timings) for _ in range(runs)]
    summary = stats(turnaround)
    return {
        "functions": {name: stats(timings[name]) for name in [*STEPS, WIDEN]},
        "turnaround_ms": summary["mean_ms"],
        "turnaround_stdev_ms": summary["stdev_ms"],
        "turnaround_cv": summary["cv"],
        "turnaround_samples_ms": turnaround,
    }


async def throughput(
    client: toolmesh.Client, frame: bytes, runs: int, concurrency: int
) -> dict[str, Any]:
    """``runs`` pipelines with ``concurrency`` in flight: what a server of them sustains."""
    remaining = runs
    scratch: dict[str, list[float]] = {name: [] for name in [*STEPS, WIDEN]}

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await pipeline(client, frame, scratch)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    return {"concurrency": concurrency, "pipelines": runs, "seconds": seconds,
            "images_per_second": runs / seconds}  # fmt: skip


def costs(turnaround_ms: float, prices: dict[str, float]) -> dict[str, float]:
    """USD for 100,000 images, one pipeline at a time, on one node of each type."""
    hours = turnaround_ms / 1000 * PROJECTION / 3600
    return {name: hours * price for name, price in prices.items()}


def table(result: dict[str, Any], baseline: dict[str, Any]) -> str:
    lines = [
        f"| step ({result['runs']} runs, one {result['image']}) | toolmesh mean ± sd (ms) | CV | in-process baseline mean ± sd (ms) | CV |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in [*STEPS, WIDEN]:
        ours, base = result["functions"][name], baseline["functions"][name]
        lines.append(
            f"| {name} | {ours['mean_ms']:.2f} ± {ours['stdev_ms']:.2f} | {ours['cv']:.2f} | "
            f"{base['mean_ms']:.2f} ± {base['stdev_ms']:.2f} | {base['cv']:.2f} |"
        )
    lines.append(
        f"| **turnaround** | **{result['turnaround_ms']:.1f} ± {result['turnaround_stdev_ms']:.1f}** | "
        f"{result['turnaround_cv']:.2f} | {baseline['turnaround_ms']:.1f} ± "
        f"{baseline['turnaround_stdev_ms']:.1f} | {baseline['turnaround_cv']:.2f} |"
    )
    by_type = result["cost_per_100k_by_node_type"]
    base_type = baseline["cost_per_100k_by_node_type"]
    concurrent = result["throughput"]
    many = concurrent["cost_per_100k_by_node_type"]
    lines += [
        "",
        f"| cost of 100,000 images on one node | toolmesh, one pipeline at a time | "
        f"toolmesh, {concurrent['concurrency']} at a time ({concurrent['images_per_second']:.1f} images/s) | "
        "in-process baseline (serial) |",
        "|---|---:|---:|---:|",
        *(f"| {name} | ${by_type[name]:.2f} | ${many[name]:.2f} | ${base_type[name]:.2f} |"
          for name in by_type),
    ]  # fmt: skip
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m perf.image_pipeline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=100, help="measured pipeline runs")
    parser.add_argument("--warm-up", type=int, default=3, help="discarded runs first")
    parser.add_argument(
        "--concurrency", type=int, default=4, help="pipelines in flight for the throughput run"
    )
    parser.add_argument("--small", action="store_true", help="5 runs (the test suite's)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.small:
        args.runs, args.warm_up = min(args.runs, 5), 1
    frame_path = sorted(STREET_FRAMES.glob("*.jpg"))[0]
    frame = frame_path.read_bytes()
    prices = load_prices()

    async def baseline_study() -> dict[str, Any]:
        async with toolmesh.Client(transport=InProcessTransport(), timeout=120) as client:
            return await study(client, frame, args.runs, args.warm_up)

    baseline = asyncio.run(baseline_study())
    with tempfile.TemporaryDirectory(prefix="image-pipeline-") as tmp:
        mesh = LocalMesh(
            run_dir=Path(tmp) / "mesh", placement=placement_file(Path(tmp), 1), models=STEPS
        )
        with mesh:

            async def mesh_study() -> dict[str, Any]:
                async with toolmesh.Client(mesh.address, timeout=120) as client:
                    measured = await study(client, frame, args.runs, args.warm_up)
                    measured["throughput"] = await throughput(
                        client, frame, args.runs, args.concurrency
                    )
                    return measured

            result = asyncio.run(mesh_study())
    for side in (result, baseline):
        side["cost_per_100k_by_node_type"] = costs(side["turnaround_ms"], prices)
        side["cost_per_100k"] = side["cost_per_100k_by_node_type"]["cpu-2core"]
    concurrent = result["throughput"]
    concurrent["cost_per_100k_by_node_type"] = costs(1000 / concurrent["images_per_second"], prices)
    result.update(
        benchmark="image_pipeline",
        date=time.strftime("%Y-%m-%d"),
        machine=MACHINE,
        image=f"{frame_path.name} (768×576 JPEG)",
        runs=args.runs,
        warm_up=args.warm_up,
        steps=STEPS,
        path="toolmesh: SDK → gateway → Triton (one CPU instance a function)",
        cost_node_type="cpu-2core",
        baseline=baseline,
    )
    markdown = table(result, baseline)
    args.results.mkdir(parents=True, exist_ok=True)

    def series(side: dict[str, Any]) -> dict[str, tuple[float, float]]:
        stats = {
            n: (side["functions"][n]["mean_ms"], side["functions"][n]["stdev_ms"]) for n in STEPS
        }
        return stats | {"turnaround": (side["turnaround_ms"], side["turnaround_stdev_ms"])}

    plot_function_stats(
        {"toolmesh (SDK → gateway → Triton)": series(result),
         "in-process baseline": series(baseline)},
        args.results / "image_pipeline.png",
        title=f"Five-step pipeline, {args.runs} runs one after another on one 768×576 "
        f"street frame: mean ± sd per step\n{MACHINE}; Pillow/NumPy functions (no model "
        "weights); Triton: one CPU instance a function",
    )  # fmt: skip
    if args.results == RESULTS:
        write_results("image_pipeline", result, markdown)
    else:
        (args.results / "image_pipeline.json").write_text(json.dumps(result, indent=2) + "\n")
        (args.results / "image_pipeline.md").write_text(markdown + "\n")
    print(markdown)


if __name__ == "__main__":
    main()
