"""`find` against its physical limit, side by side in one run: the detector alone (the
ceiling), Triton direct (tritonclient) and the gateway (toolmesh SDK), at several
concurrencies, for the find placement before this change (dynamic batching on the CPU)
and after it (unbatched on the CPU); plus the pre-processing paths and Triton's
per-stage timings.

    .venv/bin/python -m perf.find_limit
    .venv/bin/python -m perf.find_limit --concurrency 1,4,8,16 --requests 120

Writes perf/results/find_limit.json and the README table (markers perf:find_limit).
Rounds alternate direct and gateway so that drift on a noisy machine hits both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import platform
import re
import statistics
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict
from pathlib import Path

from PIL import Image

import toolmesh
from perf._harness import alternate, closed_loop, write_results
from perf.gateway_overhead import direct_inputs
from toolmesh.data import STREET_FRAMES
from toolmesh_local.mesh import LocalMesh
from toolmesh_models import imaging
from toolmesh_models.detector import (
    INPUT_SIZE,
    WEIGHTS_FILE,
    Detector,
    input_from_pil,
    preprocess,
)
from toolmesh_models.paths import weights_dir

PLACEMENTS = {
    # before: the committed find config's dynamic batcher on two CPU instances
    "before (batched on CPU)": "models:\n  find: {count: 2, batching: always}\n",
    # after: what placement.yaml now renders on a CPU-only machine
    "after (unbatched on CPU)": "models:\n  find: {count: 2, batching: gpu}\n",
}
STAGES = ("decode", "resize", "infer", "post")


def ceiling(seconds: float, sessions: int = 2) -> float:
    """Frames/s of ``sessions`` ONNX Runtime sessions × 1 thread on preprocessed input."""
    frame = sorted(STREET_FRAMES.glob("*.jpg"))[0].read_bytes()
    batch = preprocess(imaging.decode(frame))
    detectors = [
        Detector(weights_dir() / WEIGHTS_FILE, intra_op_threads=1) for _ in range(sessions)
    ]
    for detector in detectors:
        detector.infer(batch)  # warm-up
    counts = [0] * sessions
    stop = time.perf_counter() + seconds

    def loop(index: int) -> None:
        while time.perf_counter() < stop:
            detectors[index].infer(batch)
            counts[index] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(sessions)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - started)


def preprocessing(repeat: int) -> list[dict]:
    """Per-image milliseconds of the old path (decode to an array, then resize) and the new
    one (decode straight to RGB, reduced JPEG scale when ≥ 2× the input, one resize)."""
    frame = sorted(STREET_FRAMES.glob("*.jpg"))[0].read_bytes()
    large = io.BytesIO()
    Image.open(io.BytesIO(frame)).resize((1536, 1152)).save(large, format="JPEG", quality=90)
    rows = []
    for label, data in (("768×576 JPEG", frame), ("1536×1152 JPEG", large.getvalue())):

        def old(data: bytes = data) -> None:
            preprocess(imaging.decode(data))

        def new(data: bytes = data) -> None:
            reduced = imaging.decode_reduced(data, (INPUT_SIZE, INPUT_SIZE))
            assert reduced is not None
            input_from_pil(reduced.image)

        timings = {}
        for name, step in (("old", old), ("new", new)):
            step()
            samples = []
            for _ in range(repeat):
                started = time.perf_counter()
                step()
                samples.append((time.perf_counter() - started) * 1000)
            timings[name] = statistics.median(samples)
        rows.append({"image": label, "old_ms": timings["old"], "new_ms": timings["new"]})
        print(f"pre-processing {label}: old {timings['old']:.2f} ms, new {timings['new']:.2f} ms")
    return rows


def stage_means(metrics_url: str) -> dict[str, float]:
    """Mean milliseconds per stage of ``find`` from Triton's custom metrics."""
    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    found: dict[str, dict[str, float]] = {}
    for metric, key in (("toolmesh_stage_duration_us", "us"), ("toolmesh_stage_count", "n")):
        for stage, value in re.findall(
            metric + r'\{[^}]*model="find"[^}]*stage="(\w+)"[^}]*\} ([0-9.e+]+)', text
        ):
            found.setdefault(stage, {})[key] = float(value)
    return {s: v["us"] / v["n"] / 1000 for s, v in found.items() if v.get("n")}


async def load(
    address: str, triton_url: str, jpeg: bytes, requests: int, rounds: int, levels: list[int]
) -> list[dict]:
    from tritonclient.grpc.aio import InferenceServerClient

    rows = []
    async with toolmesh.Client(address, timeout=120) as client:
        triton = InferenceServerClient(triton_url)
        try:

            async def via_gateway() -> object:
                return await client.call("find", image=jpeg, object_name="person")

            async def via_triton() -> object:
                result = await triton.infer("find", direct_inputs("find", jpeg))
                return result.as_numpy("box")

            await closed_loop(via_gateway, concurrency=2, requests=8)  # warm-up
            await closed_loop(via_triton, concurrency=2, requests=8)
            for concurrency in levels:
                d, g = await alternate(
                    via_triton,
                    via_gateway,
                    concurrency=concurrency,
                    requests=requests,
                    rounds=rounds,
                )
                rows.append({"concurrency": concurrency, "direct": asdict(d), "gateway": asdict(g)})
                print(
                    f"  c={concurrency:<2d} direct {d.throughput:6.1f}/s p50 {d.p50_ms:6.1f} ms | "
                    f"gateway {g.throughput:6.1f}/s p50 {g.p50_ms:6.1f} ms | "
                    f"direct/gateway {d.throughput / g.throughput:.2f} "
                    f"errors {d.errors + g.errors}",
                    flush=True,
                )
        finally:
            await triton.close()
    return rows


def table(payload: dict) -> str:
    top = payload["ceiling_fps"]
    lines = [
        f"Measured {payload['date']} on {payload['machine']}; {payload['image']}; bundled "
        f"CenterNet (real COCO-80 weights), 2 find instances × 1 ONNX Runtime thread, CPU only. "
        f"Ceiling: the detector alone, 2 sessions × 1 thread on preprocessed input = "
        f"**{top:.1f} frames/s**.",
        "",
        "| find placement | concurrency | Triton direct (find/s) | gateway (find/s) | gateway / ceiling | direct / gateway |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, rows in payload["meshes"].items():
        for r in rows:
            d, g = r["direct"]["throughput"], r["gateway"]["throughput"]
            lines.append(
                f"| {name} | {r['concurrency']} | {d:.1f} | {g:.1f} | {g / top:.2f} | {d / g:.2f} |"
            )
    lines += [
        "",
        "| pre-processing (median, one core) | old: decode, array, resize | new: decode to RGB (reduced JPEG scale), one resize |",
        "|---|---:|---:|",
    ]
    for r in payload["preprocessing"]:
        lines.append(f"| {r['image']} | {r['old_ms']:.2f} ms | {r['new_ms']:.2f} ms |")
    stages = payload.get("stages_ms") or {}
    if stages:
        lines += [
            "",
            "Per-stage means inside Triton (custom metrics `toolmesh_stage_duration_us` / "
            "`toolmesh_stage_count`, after placement): "
            + ", ".join(f"{s} {stages[s]:.1f} ms" for s in STAGES if s in stages)
            + ".",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=120, help="requests per round")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per side")
    parser.add_argument("--concurrency", default="1,4,8,16")
    parser.add_argument("--ceiling-seconds", type=float, default=10.0)
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    jpeg = sorted(STREET_FRAMES.glob("*.jpg"))[0].read_bytes()
    started = time.time()
    top = ceiling(args.ceiling_seconds)
    print(f"ceiling: detector alone, 2 sessions × 1 thread: {top:.1f} frames/s")
    prep = preprocessing(repeat=40)
    meshes: dict[str, list[dict]] = {}
    stages: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, placement_text in PLACEMENTS.items():
            placement = Path(scratch) / f"placement-{len(meshes)}.yaml"
            placement.write_text(placement_text)
            run_dir = Path(scratch) / f"mesh-{len(meshes)}"
            print(f"{name}:")
            with LocalMesh(run_dir=run_dir, placement=placement, models=["find"]) as mesh:
                assert mesh.triton is not None
                meshes[name] = asyncio.run(
                    load(
                        mesh.address, mesh.triton.grpc_url, jpeg, args.requests, args.rounds, levels
                    )
                )
                stages = stage_means(f"http://127.0.0.1:{mesh.triton.ports.metrics}/metrics")
    print("stages (ms):", {k: round(v, 2) for k, v in stages.items()})
    payload = {
        "benchmark": "find_limit",
        "date": time.strftime("%Y-%m-%d", time.gmtime(started)),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, CPU only, Python {platform.python_version()}",
        "image": "street frame_000.jpg (768×576 JPEG)",
        "weights": "bundled CenterNet MobileNetV3 (real COCO-80 weights)",
        "requests_per_round": args.requests,
        "rounds": args.rounds,
        "ceiling_fps": top,
        "preprocessing": prep,
        "meshes": meshes,
        "stages_ms": stages,
    }
    markdown = table(payload)
    path = write_results("find_limit", payload, markdown)
    print(markdown)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
