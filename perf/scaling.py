"""Scaling ``find`` out: configured Triton servers, and a pool's pods found from EndpointSlices.

    .venv/bin/python -m perf.scaling [--case static|discovered|both]

``static``: one vs two Triton servers on loopback, given to the gateway as URLs
(``--triton-url``), the way ``toolmesh up --nodes`` runs.

``discovered``: the cluster path, rehearsed (``toolmesh_local.cluster``): three Triton
pods, each in a network namespace of its own, the gateway (its own process) with
``TOOLMESH_DISCOVERY=kubernetes`` watching the pool Service's EndpointSlices on the
stand-in API server. The pool scales 1 → 2 → 3 by publishing slices while load
runs; per step it reports throughput, the spread of calls over the pods (max/min,
counted from each Triton's own statistics), and the time from a pod being
published ready to its first answered call.

On a 2-core machine all servers, the gateway and the load generator share the same
two cores, so throughput will not scale with servers or pods (they add processes,
not cores); the spread and the reaction times are the point of the discovered case.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import toolmesh
from perf._harness import closed_loop, write_results
from toolmesh.data import STREET_FRAMES
from toolmesh_local.cluster import RehearsalPool
from toolmesh_local.mesh import LocalMesh, wait_for_health
from toolmesh_local.triton import free_port, stop_process
from toolmesh_models.paths import FUNCTIONS_DIR


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


def static_case(jpeg: bytes, concurrency: int, requests: int) -> list[dict]:
    rows = []
    for nodes in (1, 2):
        with (
            tempfile.TemporaryDirectory() as run_dir,
            LocalMesh(run_dir=Path(run_dir), models=["find"], nodes=nodes) as mesh,
        ):
            row = {"nodes": nodes, **asyncio.run(load(mesh.address, jpeg, concurrency, requests))}
        rows.append(row)
        print(f"static, {nodes} Triton server(s): {row['throughput']:.1f} find/s", flush=True)
    return rows


async def _first_call(pool: RehearsalPool, pods: list, baseline: dict, since: float) -> list[float]:
    """Seconds from ``since`` until each of ``pods`` answered its first new call."""
    reached: dict[str, float] = {}
    deadline = since + 60
    while len(reached) < len(pods) and time.monotonic() < deadline:
        for pod in pods:
            if pod.name not in reached and pool.successes(pod) > baseline[pod.name]:
                reached[pod.name] = time.monotonic() - since
        await asyncio.sleep(0.02)
    return [reached.get(p.name, float("nan")) for p in pods]


async def _discovered_steps(
    pool: RehearsalPool, address: str, jpeg: bytes, concurrency: int, requests: int
) -> list[dict]:
    rows = []
    async with toolmesh.Client(address, timeout=120) as client:

        async def call() -> object:
            return await client.call("find", image=jpeg, object_name="person")

        for count in (1, 2, 3):
            baseline = {p.name: pool.successes(p) for p in pool.pods}
            new = pool.pods[count - 1 : count] if count > 1 else []
            # background load while the new pod is published, so "first call" is under load
            background = asyncio.create_task(
                closed_loop(call, concurrency=concurrency, requests=concurrency * 20)
            )
            await asyncio.sleep(0.5)
            published = time.monotonic()
            pool.publish({p.name: "ready" for p in pool.pods[:count]})
            reaction = await _first_call(pool, new, baseline, published)
            await background
            before = {p.name: pool.successes(p) for p in pool.pods}
            result = await closed_loop(call, concurrency=concurrency, requests=requests)
            await asyncio.sleep(0.5)  # Triton counts a call once its response is out
            per_pod = [pool.successes(p) - before[p.name] for p in pool.pods[:count]]
            row = {
                "pods": count,
                "throughput": result.throughput,
                "p50_ms": result.p50_ms,
                "p99_ms": result.p99_ms,
                "errors": result.errors,
                "calls_per_pod": per_pod,
                "spread": max(per_pod) / max(1, min(per_pod)),
                "ready_to_first_call_s": reaction[0] if reaction else None,
            }
            rows.append(row)
            print(
                f"discovered, {count} pod(s): {row['throughput']:.1f} find/s, calls per pod "
                f"{per_pod}, first call on the new pod "
                + (f"{reaction[0]:.2f} s after ready" if reaction else "(none added)"),
                flush=True,
            )
    return rows


def discovered_case(jpeg: bytes, concurrency: int, requests: int) -> list[dict]:
    with (
        tempfile.TemporaryDirectory() as run_dir,
        RehearsalPool(Path(run_dir), pods=3) as pool,
    ):
        pool.publish({pool.pods[0].name: "ready"})
        address = f"127.0.0.1:{free_port()}"
        env = {**os.environ, **pool.environment(pool.functions_dir(FUNCTIONS_DIR))}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        log = Path(run_dir) / "gateway.log"
        with open(log, "wb") as out:
            gateway = subprocess.Popen(
                [sys.executable, "-m", "toolmesh_gateway", f"--address={address}"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for_health(address, timeout=60)
            return asyncio.run(_discovered_steps(pool, address, jpeg, concurrency, requests))
        finally:
            stop_process(gateway, 15)


def tables(static: list[dict], discovered: list[dict]) -> str:
    parts = []
    if static:
        base = static[0]["throughput"]
        parts += [
            "| Triton servers (configured URLs) | find/s | vs 1 server | p50 / p99 (ms) |",
            "|---:|---:|---:|---:|",
            *(
                f"| {r['nodes']} | {r['throughput']:.1f} | {r['throughput'] / base:.2f}× "
                f"| {r['p50_ms']:.0f} / {r['p99_ms']:.0f} |"
                for r in static
            ),
        ]
    if discovered:
        base = discovered[0]["throughput"]
        if parts:
            parts.append("")
        parts += [
            "| pods (discovered from EndpointSlices) | find/s | vs 1 pod | calls per pod "
            "| spread max/min | new pod: ready → first call | p50 / p99 (ms) |",
            "|---:|---:|---:|---|---:|---:|---:|",
            *(
                f"| {r['pods']} | {r['throughput']:.1f} | {r['throughput'] / base:.2f}× "
                f"| {' / '.join(map(str, r['calls_per_pod']))} | {r['spread']:.2f} "
                + (
                    f"| {r['ready_to_first_call_s']:.2f} s "
                    if r["ready_to_first_call_s"] is not None
                    else "| – "
                )
                + f"| {r['p50_ms']:.0f} / {r['p99_ms']:.0f} |"
                for r in discovered
            ),
        ]
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--case", choices=["static", "discovered", "both"], default="both")
    parser.add_argument("--requests", type=int, default=120)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    jpeg = sorted(STREET_FRAMES.glob("*.jpg"))[0].read_bytes()
    static = static_case(jpeg, args.concurrency, args.requests) if args.case != "discovered" else []
    discovered = (
        discovered_case(jpeg, args.concurrency, args.requests) if args.case != "static" else []
    )
    table = tables(static, discovered)
    payload: dict[str, Any] = {
        "benchmark": "scaling",
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, CPU only",
        "cores": os.cpu_count(),
        "model": "find: CenterNet (bundled real weights), one KIND_CPU instance per pod",
        "concurrency": args.concurrency,
        "requests": args.requests,
        "rows": static,
        "discovered": discovered,
    }
    write_results("scaling", payload, table)
    print(table)


if __name__ == "__main__":
    main()
