"""Node sweep: one program over N tasks on 1, 2 and 4 Triton nodes, wall time and cost per configuration.

    .venv/bin/python -m perf.node_sweep                        # local nodes 1, 2, 4
    .venv/bin/python -m perf.node_sweep --small                # what the test suite runs
    .venv/bin/python -m perf.node_sweep --endpoints grpc://n0:8001,grpc://n1:8001,… \\
        --node-type a100                                       # a cluster's Triton servers

The DiCE-C paper's tables sweep 1–8 GPU nodes. Locally each "node" is a Triton
server process of its own (``LocalMesh(nodes=N)``) behind one gateway, every
model with ``--instances`` CPU instances per node; with ``--endpoints`` the
gateway started here balances over the first N of the given Triton servers
instead, and nothing else is started. The in-process baseline (serial, one
process) is the first row for reference.

On one machine the nodes share its CPU cores: this sweep is CPU-bound and more
"nodes" add processes, not cores, so no speed-up is expected here; the cost
columns say what the run costs on this one machine and what it would cost if
each node were a separate machine of ``--node-type``. Results go to
perf/results/node_sweep.{json,md} and the README.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from perf._harness import RESULTS, write_results
from perf.paper_workload import (
    MACHINE,
    MAX_MESSAGE,
    PROGRAMS,
    WEIGHTS,
    images_dir,
    measure,
    model_dir,
    model_store,
    placement_file,
)
from toolmesh import GrpcTransport
from toolmesh.batch import (
    BatchConfig,
    build_report,
    load_prices,
    load_utilisation,
    read_results,
    summarise_utilisation,
)
from toolmesh_local.inprocess import InProcessTransport
from toolmesh_local.mesh import LocalMesh, wait_for_health
from toolmesh_local.triton import free_port, stop_process
from toolmesh_models.paths import FUNCTIONS_DIR

#: The paper's identical-hardware sweep (A100 nodes): nodes → (baseline, DiCE-C) minutes.
PAPER_MINUTES = {1: (141, 79), 2: (75, 54), 4: (36, 25), 6: (26, 18), 8: (17, 12)}


@contextmanager
def local_nodes(
    work: Path, nodes: int, functions: list[str], store: Path, instances: int
) -> Iterator[tuple[str, dict[str, list[int]]]]:
    """A local mesh of ``nodes`` Triton servers; yields its address and process groups."""
    mesh = LocalMesh(
        run_dir=work / f"mesh-{nodes}",
        placement=placement_file(work, instances),
        models=functions,
        nodes=nodes,
        env={"TOOLMESH_MODEL_DIR": str(store)},
    )
    with mesh:
        assert mesh.gateway is not None
        yield (
            mesh.address,
            {
                "triton": [t.pid for t in mesh.tritons if t.pid is not None],
                "gateway": [mesh.gateway.pid],
                "client": [os.getpid()],
            },
        )


@contextmanager
def remote_nodes(
    work: Path, endpoints: Sequence[str]
) -> Iterator[tuple[str, dict[str, list[int]]]]:
    """A gateway on this machine balancing over remote Triton servers (not sampled here)."""
    address = f"127.0.0.1:{free_port()}"
    log = work / f"gateway-{len(endpoints)}.log"
    command = [
        sys.executable, "-m", "toolmesh_gateway", f"--address={address}",
        f"--triton-url={','.join(endpoints)}", f"--metrics-address=127.0.0.1:{free_port()}",
        f"--functions-dir={FUNCTIONS_DIR}",
    ]  # fmt: skip
    with open(log, "wb") as out:
        gateway = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        wait_for_health(address, timeout=120)
        yield address, {"gateway": [gateway.pid], "client": [os.getpid()]}
    finally:
        stop_process(gateway, 15)


def row(
    label: str,
    nodes: int,
    config: BatchConfig,
    seconds: float,
    utilisation: Path,
    prices: dict[str, float],
    node_type: str,
    machine_price: float,
) -> dict[str, Any]:
    samples = load_utilisation(utilisation)
    report = build_report(
        read_results(config.out),
        {node_type: nodes},
        prices,
        utilisation=summarise_utilisation(samples) if samples else None,
    )
    return {
        "run": label,
        "nodes": nodes,
        "tasks": config.tasks,
        "concurrency": config.concurrency,
        "seconds": seconds,
        "tasks_per_second": config.tasks / seconds,
        "cost_usd_this_machine": seconds / 3600 * machine_price,
        "cost_usd_as_separate_nodes": seconds / 3600 * prices[node_type] * nodes,
        "report": report.as_json(),
    }


def table(rows: Sequence[dict[str, Any]], node_type: str, remote: bool, program: str) -> str:
    base = rows[0]["seconds"]
    one = next((r["seconds"] for r in rows if r["run"] == "toolmesh" and r["nodes"] == 1), None)
    where = (
        "remote Triton servers" if remote else "Triton processes on this one machine (CPU-bound)"
    )
    lines = [
        f"| {program}: {rows[0]['tasks']} tasks | nodes ({where}) | wall (s) | tasks/s | vs baseline | vs 1 node | cost, this machine | cost, each node a {node_type} | paper (A100): baseline → DiCE-C (min) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        paper = PAPER_MINUTES.get(r["nodes"]) if r["run"] == "toolmesh" else None
        lines.append(
            f"| {r['run']} | {r['nodes']} | {r['seconds']:.1f} | {r['tasks_per_second']:.2f} | "
            f"{base / r['seconds']:.2f}× | "
            + (f"{one / r['seconds']:.2f}× | " if one and r["run"] == "toolmesh" else "– | ")
            + f"${r['cost_usd_this_machine']:.4g} | ${r['cost_usd_as_separate_nodes']:.4g} | "
            + (f"{paper[0]} → {paper[1]} |" if paper else "– |")
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m perf.node_sweep",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--program", default="accident", choices=sorted(PROGRAMS))
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--images", type=int, default=30)
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--nodes", default="1,2,4", help="node counts to sweep")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--instances", type=int, default=1, help="CPU instances a model per node")
    parser.add_argument(
        "--endpoints", default="", help="Triton gRPC URLs of remote nodes (comma-separated)"
    )
    parser.add_argument("--node-type", default="cpu-2core", help="price row of one node")
    parser.add_argument("--small", action="store_true", help="a few tasks (the test suite's)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.small:
        args.tasks, args.images = min(args.tasks, 4), min(args.images, 3)
    prices = load_prices()
    if args.node_type not in prices:
        parser.error(f"unknown --node-type {args.node_type!r}; known: {sorted(prices)}")
    endpoints = [e.strip() for e in args.endpoints.split(",") if e.strip()]
    sweep = [int(n) for n in args.nodes.split(",")]
    if endpoints and max(sweep) > len(endpoints):
        parser.error(f"--nodes {args.nodes} needs {max(sweep)} endpoints, got {len(endpoints)}")
    path, functions, tiny = PROGRAMS[args.program]
    work = Path(tempfile.mkdtemp(prefix="node-sweep-"))
    rows = []
    try:
        images = images_dir(work, args.images)
        store = model_store(work, tiny)

        def config(name: str, concurrency: int) -> BatchConfig:
            return BatchConfig(path, images, args.tasks, work / f"{name}.jsonl", concurrency,
                               label=name, seed=args.seed)  # fmt: skip

        base = config("baseline", 1)
        with model_dir(store):
            seconds = measure(
                base, InProcessTransport, {"client": [os.getpid()]}, work / "baseline.util"
            )
        rows.append(row("baseline (in-process, serial)", 1, base, seconds, work / "baseline.util",
                        prices, args.node_type, prices["cpu-2core"]))  # fmt: skip
        print(f"baseline: {seconds:.1f}s", flush=True)
        for nodes in sweep:
            cfg = config(f"toolmesh-{nodes}", args.concurrency)
            util = work / f"toolmesh-{nodes}.util"
            cluster = (
                remote_nodes(work, endpoints[:nodes])
                if endpoints
                else local_nodes(work, nodes, functions, store, args.instances)
            )
            with cluster as (address, groups):
                seconds = measure(
                    cfg,
                    lambda address=address: GrpcTransport(address, max_message_bytes=MAX_MESSAGE),
                    groups,
                    util,
                )
            rows.append(row("toolmesh", nodes, cfg, seconds, util, prices, args.node_type,
                            prices["cpu-2core"]))  # fmt: skip
            print(f"toolmesh, {nodes} node(s): {seconds:.1f}s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    markdown = table(rows, args.node_type, bool(endpoints), args.program)
    payload = {
        "benchmark": "node_sweep",
        "date": time.strftime("%Y-%m-%d"),
        "machine": MACHINE,
        "weights": WEIGHTS,
        "cpu_bound": not endpoints,
        "endpoints": endpoints,
        "program": args.program,
        "tasks": args.tasks,
        "images": args.images,
        "seed": args.seed,
        "instances_per_node": args.instances,
        "node_type": args.node_type,
        "rows": rows,
        "paper_minutes": PAPER_MINUTES,
    }
    if args.results == RESULTS:
        write_results("node_sweep", payload, markdown)
    else:
        args.results.mkdir(parents=True, exist_ok=True)
        (args.results / "node_sweep.json").write_text(json.dumps(payload, indent=2) + "\n")
        (args.results / "node_sweep.md").write_text(markdown + "\n")
    print(markdown)


if __name__ == "__main__":
    main()
