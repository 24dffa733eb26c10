"""Codegen speedup: every corpus program, serial and parallelized, against a live gateway.

    .venv/bin/python -m perf.codegen_speedup                  # starts its own mesh
    .venv/bin/python -m perf.codegen_speedup --frames 4 --repeats 3
    .venv/bin/python -m perf.codegen_speedup --address localhost:50051

Both versions run in the same sandbox process, alternating, on the same frames; the
time is ``solve``'s own wall time as the sandbox measures it (no process start-up).
The ideal speedup is the critical-path one: serial rounds (one per call) over parallel
rounds, what the rewrite would give if every call took the same time and concurrent
calls cost nothing extra. On this project's 2-core machine the client, gateway and
Triton share the two cores, so CPU-heavy calls (``find``) cannot overlap much.
Anchor: LLMCompiler reports up to 3.7x latency speedup over sequential tool calling.
Writes perf/results/codegen_speedup.json and the README table.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from perf._harness import ROOT, write_results
from toolmesh.data import STREET_FRAMES
from toolmesh_codegen import ProgramError, Sandbox, plan
from toolmesh_local.mesh import LocalMesh

CORPUS = sorted((ROOT / "codegen" / "corpus").glob("*.py"))


async def measure(address: str, frames: list[Path], repeats: int) -> list[dict]:
    rows = []
    async with Sandbox(address) as sandbox:
        warm = (ROOT / "codegen" / "corpus" / "02_people_and_cars.py").read_text()
        for frame in frames[:2]:
            await sandbox.run(warm, image=frame)
        for path in CORPUS:
            source = path.read_text()
            rewrite = plan(source)
            serial_s: list[float] = []
            parallel_s: list[float] = []
            ideal: list[float] = []
            calls = serial_rounds = parallel_rounds = 0
            raises = None
            for frame in frames:
                best_serial = best_parallel = math.inf
                for _ in range(repeats):
                    try:
                        serial = await sandbox.run(source, image=frame)
                        parallel = await sandbox.run(rewrite.source, image=frame)
                    except ProgramError as exc:
                        raises = exc.type_name
                        break
                    assert parallel.value == serial.value, path.name
                    best_serial = min(best_serial, serial.elapsed_s)
                    best_parallel = min(best_parallel, parallel.elapsed_s)
                if raises:
                    break
                serial_s.append(best_serial)
                parallel_s.append(best_parallel)
                ideal.append(serial.rounds / parallel.rounds)
                calls += serial.calls
                serial_rounds += serial.rounds
                parallel_rounds += parallel.rounds
            if raises:
                print(f"{path.stem:34s} raises {raises} by design; not timed", flush=True)
                continue
            row = {
                "program": path.stem,
                "calls": calls / len(frames),
                "serial_rounds": serial_rounds / len(frames),
                "parallel_rounds": parallel_rounds / len(frames),
                "static_rounds": rewrite.rounds,
                "serial_ms": 1000 * sum(serial_s) / len(frames),
                "parallel_ms": 1000 * sum(parallel_s) / len(frames),
                "ideal": statistics.fmean(ideal),
            }
            row["speedup"] = row["serial_ms"] / row["parallel_ms"]
            row["of_ideal"] = row["speedup"] / row["ideal"]
            rows.append(row)
            print(
                f"{row['program']:34s} calls {row['calls']:5.1f} rounds {row['serial_rounds']:5.1f}"
                f" -> {row['parallel_rounds']:4.1f} | serial {row['serial_ms']:7.1f} ms"
                f" parallel {row['parallel_ms']:7.1f} ms | {row['speedup']:4.2f}x"
                f" (ideal {row['ideal']:4.2f}x)",
                flush=True,
            )
    return rows


def summary(rows: list[dict]) -> dict:
    def geomean(values: list[float]) -> float:
        return math.exp(statistics.fmean(math.log(v) for v in values))

    parallel_rows = [r for r in rows if r["ideal"] > 1.0]
    return {
        "programs": len(rows),
        "with_parallelism": len(parallel_rows),
        "geomean_speedup": geomean([r["speedup"] for r in rows]),
        "geomean_speedup_with_parallelism": geomean([r["speedup"] for r in parallel_rows]),
        "geomean_ideal_with_parallelism": geomean([r["ideal"] for r in parallel_rows]),
        "max_speedup": max(r["speedup"] for r in rows),
        "total_serial_ms": sum(r["serial_ms"] for r in rows),
        "total_parallel_ms": sum(r["parallel_ms"] for r in rows),
    }


def table(rows: list[dict], totals: dict) -> str:
    lines = [
        "| program | calls | rounds serial → parallel | ideal | serial (ms) | parallel (ms) | speedup | of ideal |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['program']} | {r['calls']:.1f} | {r['serial_rounds']:.1f} → {r['parallel_rounds']:.1f} "
            f"| {r['ideal']:.2f}× | {r['serial_ms']:.1f} | {r['parallel_ms']:.1f} "
            f"| **{r['speedup']:.2f}×** | {r['of_ideal']:.0%} |"
        )
    lines.append(
        f"| **all {totals['programs']}** (geomean; {totals['with_parallelism']} with parallelism: "
        f"{totals['geomean_speedup_with_parallelism']:.2f}× of {totals['geomean_ideal_with_parallelism']:.2f}× ideal) "
        f"| | | | {totals['total_serial_ms']:.0f} | {totals['total_parallel_ms']:.0f} "
        f"| **{totals['geomean_speedup']:.2f}×** | |"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--address", help="an existing gateway (default: start a mesh)")
    parser.add_argument("--frames", type=int, default=3, help="street frames per program")
    parser.add_argument("--repeats", type=int, default=2, help="runs per frame; the best counts")
    args = parser.parse_args()
    every = sorted(STREET_FRAMES.glob("*.jpg"))
    step = max(1, len(every) // args.frames)
    frames = every[::step][: args.frames]
    started = time.time()
    if args.address:
        rows = asyncio.run(measure(args.address, frames, args.repeats))
    else:
        with tempfile.TemporaryDirectory() as run_dir, LocalMesh(run_dir=Path(run_dir)) as mesh:
            rows = asyncio.run(measure(mesh.address, frames, args.repeats))
    totals = summary(rows)
    payload = {
        "benchmark": "codegen_speedup",
        "date": time.strftime("%Y-%m-%d", time.gmtime(started)),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "frames": [f.name for f in frames],
        "repeats": args.repeats,
        "anchor": "LLMCompiler: up to 3.7x latency speedup over sequential tool calling",
        "summary": totals,
        "rows": rows,
    }
    markdown = table(rows, totals)
    path = write_results("codegen_speedup", payload, markdown)
    print(markdown)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
