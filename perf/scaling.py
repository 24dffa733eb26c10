"""Throughput of ``find`` through the gateway with 1 vs 2 Triton servers (stand-in nodes).

    .venv/bin/python -m perf.scaling

On a 2-core machine both Triton servers, the gateway and the load generator
share the same two cores, so the honest ceiling is about the single-server
figure: the second server adds processes, not cores. The script measures it
anyway, because on real nodes (or one GPU per server) the same gateway spreads
the load; the README explains the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import toolmesh
from perf._harness import closed_loop, write_results
from toolmesh.data import STREET_FRAMES
from toolmesh_local.mesh import LocalMesh


async def load(address: str, jpeg: bytes, concurrency: int, requests: int) -> dict:
    async with toolmesh.Client(address, timeout=120) as client:

        async def call() -> object:
            return await client.call("find", image=jpeg, object_name="person")

        await closed_loop(call, concurrency=2, requests=6)
        result = await closed_loop(call, concurrency=concurrency, requests=requests)
    return {
        "throughput": result.throughput,
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "errors": result.errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=120)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    jpeg = sorted(STREET_FRAMES.glob("*.jpg"))[0].read_bytes()
    rows = []
    for nodes in (1, 2):
        with (
            tempfile.TemporaryDirectory() as run_dir,
            LocalMesh(run_dir=Path(run_dir), models=["find"], nodes=nodes) as mesh,
        ):
            row = {
                "nodes": nodes,
                **asyncio.run(load(mesh.address, jpeg, args.concurrency, args.requests)),
            }
        rows.append(row)
        print(
            f"{nodes} Triton server(s): {row['throughput']:.1f} find/s, p50 {row['p50_ms']:.0f} ms",
            flush=True,
        )
    base = rows[0]["throughput"]
    lines = [
        "| Triton servers | find/s through the gateway | vs 1 server | p50 / p99 (ms) |",
        "|---:|---:|---:|---:|",
        *(
            f"| {r['nodes']} | {r['throughput']:.1f} | {r['throughput'] / base:.2f}× | {r['p50_ms']:.0f} / {r['p99_ms']:.0f} |"
            for r in rows
        ),
    ]
    table = "\n".join(lines)
    write_results(
        "scaling",
        {
            "benchmark": "scaling",
            "date": time.strftime("%Y-%m-%d"),
            "cores": os.cpu_count(),
            "concurrency": args.concurrency,
            "rows": rows,
        },
        table,
    )
    print(table)


if __name__ == "__main__":
    main()
