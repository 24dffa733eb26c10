"""Per-function latency and throughput of the vision toolbox, and the detector's dynamic batching.

Run with ``python -m perf.toolbox``. Two parts:

1. Through the gateway (SDK calls): every toolbox function at concurrency 1 and
   8, latency mean / stdev / CV and throughput. Real weights: find (CenterNet),
   exists, count, read_text, dominant_color. The transformer functions run tiny
   random-weight models of their real architectures (no hub here), so their
   numbers measure the serving path, not the production models' compute.
2. Direct on Triton (perf_analyzer): ``find`` with dynamic batching on vs off,
   at concurrency 1 and 8.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import toolmesh
from perf._harness import closed_loop, write_results
from tests.triton_models.tiny_models import install_tiny_models
from toolmesh.data import STREET_FRAMES
from toolmesh_local.mesh import LocalMesh
from toolmesh_local.perf_analyzer import image_input_data, run_perf_analyzer
from toolmesh_local.triton import TritonServer
from toolmesh_models.placement import parse_placement
from toolmesh_models.repository import render_repository
from toolmesh_models.store import ModelStore

CONCURRENCY = (1, 8)


def calls(frame: Path) -> dict[str, dict[str, Any]]:
    crop = np.asarray(__import__("PIL.Image").Image.open(frame).convert("RGB"))[100:300, 300:500]
    return {
        "find": {"image": frame, "object_name": "person"},
        "exists": {"image": frame, "object_name": "car"},
        "count": {"image": frame, "object_name": "person"},
        "read_text": {"image": frame},
        "dominant_color": {"image": frame, "box": [300, 100, 500, 300]},
        "simple_query": {"image": frame, "question": "what is on the street?"},
        "caption": {"image": frame},
        "verify_property": {"image": frame, "object_name": "car", "property": "red"},
        "best_image_match": {"images": [crop, crop[::-1], crop[:, ::-1]], "text": "a person"},
        "best_text_match": {"image": frame, "texts": ["a street", "a beach", "a kitchen"]},
        "compute_depth": {"image": frame, "boxes": [[300, 100, 500, 300]]},
    }


async def measure(address: str, frame: Path, requests: int) -> list[dict[str, Any]]:
    rows = []
    async with toolmesh.Client(address, timeout=120) as client:
        for name, arguments in calls(frame).items():
            await client.call(name, **arguments)  # warm up
            for concurrency in CONCURRENCY:
                latencies: list[float] = []

                async def one(
                    name: str = name, arguments: dict = arguments, latencies: list = latencies
                ) -> None:
                    started = time.perf_counter()
                    await client.call(name, **arguments)
                    latencies.append((time.perf_counter() - started) * 1000)

                load = await closed_loop(one, concurrency=concurrency, requests=requests)
                mean = statistics.fmean(latencies)
                stdev = statistics.stdev(latencies) if len(latencies) > 1 else 0.0
                rows.append({"function": name, "concurrency": concurrency,
                             "throughput": load.throughput, "mean_ms": mean, "stdev_ms": stdev,
                             "cv": stdev / mean, "errors": load.errors})  # fmt: skip
                print(rows[-1], flush=True)
    return rows


def detector_batching(work: Path, frame: Path) -> list[dict[str, Any]]:
    """perf_analyzer on Triton: find with dynamic batching on, then off (same instances)."""
    placement = parse_placement({"models": {"find": {"count": 2}}})
    rows = []
    for batching in ("on", "off"):
        repo = work / f"repo-{batching}"
        render_repository(repo, placement=placement, gpus=[], models=["find"])
        if batching == "off":
            config = repo / "find" / "config.pbtxt"
            text = config.read_text()
            start = text.index("dynamic_batching")
            config.write_text(text[:start] + text[text.index("}", start) + 1 :])
        data = image_input_data(
            work / "find.json", frame.read_bytes(), object_name="person", threshold=0.3
        )
        with TritonServer(repo, work / f"triton-{batching}") as server:
            for concurrency in CONCURRENCY:
                result = run_perf_analyzer(
                    server.grpc_url, "find", input_data=data, concurrency=concurrency
                )
                rows.append({"batching": batching, "concurrency": concurrency,
                             "throughput": result.throughput,
                             "p50_ms": (result.p50_us or 0) / 1000, "p99_ms": (result.p99_us or 0) / 1000})  # fmt: skip
                print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m perf.toolbox")
    parser.add_argument(
        "--requests", type=int, default=24, help="calls per function and concurrency"
    )
    args = parser.parse_args()
    frame = sorted(STREET_FRAMES.glob("*.jpg"))[0]
    work = Path(tempfile.mkdtemp(prefix="perf-toolbox-"))
    try:
        store = ModelStore(work / "store")
        install_tiny_models(
            store, [n for n in ("blip-vqa", "blip-caption", "blip-itm", "clip", "depth")]
        )
        placement = work / "placement.yaml"
        placement.write_text("defaults: {count: 1}\nmodels: {find: {count: 2}}\n")
        with LocalMesh(run_dir=work / "mesh", placement=placement, models=list(calls(frame)),
                       env={"TOOLMESH_MODEL_DIR": str(store.root)}) as mesh:  # fmt: skip
            functions = asyncio.run(measure(mesh.address, frame, args.requests))
        batching = detector_batching(work, frame)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = [
        "| function | weights | c=1 req/s | c=1 mean ± sd (ms) | c=1 CV | c=8 req/s | c=8 mean ± sd (ms) | c=8 CV |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    real = {"find", "exists", "count", "read_text", "dominant_color"}
    for name in calls(frame):
        one, eight = (
            next(r for r in functions if r["function"] == name and r["concurrency"] == c)
            for c in CONCURRENCY
        )
        lines.append(
            f"| {name} | {'real' if name in real else 'tiny random'} | {one['throughput']:.1f} | "
            f"{one['mean_ms']:.0f} ± {one['stdev_ms']:.0f} | {one['cv']:.2f} | {eight['throughput']:.1f} | "
            f"{eight['mean_ms']:.0f} ± {eight['stdev_ms']:.0f} | {eight['cv']:.2f} |"
        )
    lines += ["", "`find` direct on Triton (perf_analyzer, 2 CPU instances), dynamic batching on vs off:", "",
              "| batching | concurrency | infer/s | p50 / p99 (ms) |", "|---|---:|---:|---:|"]  # fmt: skip
    for row in batching:
        lines.append(f"| {row['batching']} | {row['concurrency']} | {row['throughput']:.1f} | "
                     f"{row['p50_ms']:.0f} / {row['p99_ms']:.0f} |")  # fmt: skip
    payload = {"benchmark": "toolbox", "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
               "image": frame.name, "requests_per_point": args.requests,
               "functions": functions, "detector_batching": batching}  # fmt: skip
    print(write_results("toolbox", payload, "\n".join(lines)))


if __name__ == "__main__":
    main()
