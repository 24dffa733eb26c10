"""What the sandbox costs: per-run overhead with a warm pool, and batch throughput of
the street program sandboxed vs trusted (in-process), side by side in one run.

    .venv/bin/python -m perf.sandbox_overhead              # 200 overhead runs, 60 tasks
    .venv/bin/python -m perf.sandbox_overhead --tasks 30   # a quicker run

Overhead: a program that makes no call, so the time is the sandbox's own: taking a
forked, confined process from the pool, sending the program and a street frame,
checking and compiling it, and reading the answer (``solve`` itself is microseconds).
Throughput: ``run_batch`` on ``sdk/toolmesh/data/programs/street_report.py`` against a
real local mesh (Triton + gateway), the same tasks with the in-process solver and with
``toolmesh_codegen.batch.sandboxed_solver``, alternating so drift hits both. On a
2-core CPU-only machine Triton, the gateway, the runner and the sandbox share the
same cores, so every CPU-millisecond the sandbox spends is taken from the models.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from perf._harness import write_results
from toolmesh import GrpcTransport
from toolmesh.batch import BatchConfig, run_batch
from toolmesh.data import STREET_FRAMES, STREET_REPORT
from toolmesh_codegen import Limits, Sandbox
from toolmesh_codegen.batch import sandboxed_solver
from toolmesh_local.mesh import LocalMesh

EMPTY = "async def solve(image):\n    return image.width\n"


async def overhead(runs: int, frame: Path) -> dict[str, float]:
    async def no_call(function: str, /, **arguments: object) -> None:
        return None

    latencies: list[float] = []
    async with Sandbox(call=no_call, limits=Limits(timeout_s=60), pool=2) as box:
        for _ in range(5):  # start the zygote and fill the pool
            await box.run(EMPTY, image=frame)
        for _ in range(runs):
            started = time.perf_counter()
            result = await box.run(EMPTY, image=frame)
            latencies.append(time.perf_counter() - started)
            assert result.value == 768
            await asyncio.sleep(0.01)  # the pool refills between runs, as it would in use
    ms = sorted(x * 1000 for x in latencies)
    return {
        "runs": runs,
        "p50_ms": ms[len(ms) // 2],
        "p99_ms": ms[min(len(ms) - 1, int(len(ms) * 0.99))],
        "mean_ms": sum(ms) / len(ms),
    }


async def batch(
    address: str, images: Path, out: Path, tasks: int, concurrency: int, sandboxed: bool
) -> float:
    config = BatchConfig(
        STREET_REPORT, images, tasks, out, concurrency,
        label="sandboxed" if sandboxed else "trusted",
        solver=(lambda p: sandboxed_solver(p, pool=concurrency)) if sandboxed else None,
    )  # fmt: skip
    summary = await run_batch(config, GrpcTransport(address, max_message_bytes=64 * 2**20))
    assert summary.failed == 0 and summary.complete, summary
    return summary.seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    frames = sorted(STREET_FRAMES.glob("*.jpg"))
    cost = asyncio.run(overhead(args.runs, frames[0]))
    print(f"per-run overhead: p50 {cost['p50_ms']:.1f} ms, p99 {cost['p99_ms']:.1f} ms", flush=True)
    seconds: dict[str, list[float]] = {"trusted": [], "sandboxed": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        images = work / "images"
        images.mkdir()
        for path in frames[:30]:
            shutil.copy(path, images / path.name)
        with LocalMesh(run_dir=work / "mesh") as mesh:
            asyncio.run(
                batch(mesh.address, images, work / "warm.jsonl", 8, args.concurrency, False)
            )
            for repeat in range(args.repeats):
                for mode in ("trusted", "sandboxed"):
                    out = work / f"{mode}-{repeat}.jsonl"
                    s = asyncio.run(
                        batch(
                            mesh.address,
                            images,
                            out,
                            args.tasks,
                            args.concurrency,
                            mode == "sandboxed",
                        )
                    )
                    seconds[mode].append(s)
                    print(f"{mode}: {args.tasks} tasks in {s:.1f} s", flush=True)
    throughput = {mode: args.tasks / min(values) for mode, values in seconds.items()}
    ratio = throughput["sandboxed"] / throughput["trusted"]
    machine = (
        f"{os.cpu_count()} cores, CPU only ({platform.machine()}, {platform.python_version()})"
    )
    payload = {
        "machine": machine,
        "overhead": cost,
        "batch": {
            "program": "sdk/toolmesh/data/programs/street_report.py",
            "tasks": args.tasks,
            "concurrency": args.concurrency,
            "seconds": seconds,
            "tasks_per_s": throughput,
            "sandboxed_over_trusted": ratio,
            "target": 0.9,
        },
    }
    table = "\n".join(
        [
            f"Measured on {machine}; mesh, runner and sandbox share the cores.",
            "",
            "| measure | trusted (in-process) | sandboxed |",
            "|---|---|---|",
            f"| per-run sandbox overhead, warm pool (p50 / p99) | - | {cost['p50_ms']:.1f} / {cost['p99_ms']:.1f} ms |",
            f"| street program, {args.tasks} tasks, concurrency {args.concurrency} (best of {args.repeats}) "
            f"| {throughput['trusted']:.2f} tasks/s | {throughput['sandboxed']:.2f} tasks/s ({ratio:.2f}× trusted; target ≥ 0.9) |",
        ]
    )
    print(table)
    write_results("sandbox_overhead", payload, table)


if __name__ == "__main__":
    main()
