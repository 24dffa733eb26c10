"""Gateway overhead: the same calls made directly on Triton (tritonclient) and through
the gateway (toolmesh SDK), side by side in one run, at several concurrencies.

    .venv/bin/python -m perf.gateway_overhead               # starts its own mesh
    .venv/bin/python -m perf.gateway_overhead --requests 400

Prints throughput and p50/p99 per side and the ratio gateway/direct; writes
perf/results/gateway_overhead.json and the README table. Rounds alternate
direct and gateway so that drift on a noisy machine hits both sides alike.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tritonclient.grpc import InferInput
from tritonclient.grpc.aio import InferenceServerClient

import toolmesh
from perf._harness import alternate, closed_loop, write_results
from toolmesh.data import STREET_FRAMES
from toolmesh_local.mesh import LocalMesh

TARGETS = {"find": 0.95, "greyscale": 0.60}


def direct_inputs(function: str, jpeg: bytes) -> list[InferInput]:
    """Exactly the tensors the gateway builds for the same call (find batches: a batch dim of 1)."""
    if function == "greyscale":
        image = InferInput("image", [len(jpeg)], "UINT8")
        image.set_data_from_numpy(np.frombuffer(jpeg, dtype=np.uint8))
        return [image]
    image = InferInput("image", [1, len(jpeg)], "UINT8")
    image.set_data_from_numpy(np.frombuffer(jpeg, dtype=np.uint8)[np.newaxis])
    name = InferInput("object_name", [1, 1], "BYTES")
    name.set_data_from_numpy(np.array([[b"person"]], dtype=object))
    threshold = InferInput("threshold", [1, 1], "FP32")
    threshold.set_data_from_numpy(np.array([[0.3]], dtype=np.float32))
    return [image, name, threshold]


async def measure(
    address: str, triton_url: str, jpeg: bytes, requests: int, rounds: int, concurrencies: list[int]
) -> list[dict]:
    rows = []
    async with toolmesh.Client(address, timeout=120) as client:
        triton = InferenceServerClient(triton_url)
        try:
            for function in TARGETS:
                kwargs = {"image": jpeg}
                if function == "find":
                    kwargs["object_name"] = "person"

                async def via_gateway(function: str = function, kwargs: dict = kwargs) -> object:
                    return await client.call(function, **kwargs)

                async def via_triton(function: str = function) -> object:
                    result = await triton.infer(function, direct_inputs(function, jpeg))
                    return result.as_numpy("box" if function == "find" else "result")

                await closed_loop(via_gateway, concurrency=2, requests=8)  # warm-up
                await closed_loop(via_triton, concurrency=2, requests=8)
                for concurrency in concurrencies:
                    d, g = await alternate(
                        via_triton,
                        via_gateway,
                        concurrency=concurrency,
                        requests=requests,
                        rounds=rounds,
                    )
                    row = {
                        "function": function,
                        "concurrency": concurrency,
                        "direct": asdict(d),
                        "gateway": asdict(g),
                        "ratio": g.throughput / d.throughput,
                        "target": TARGETS[function],
                    }
                    rows.append(row)
                    print(
                        f"{function:10s} c={concurrency:<2d} direct {d.throughput:7.1f}/s "
                        f"p50 {d.p50_ms:6.1f} p99 {d.p99_ms:6.1f} ms | gateway {g.throughput:7.1f}/s "
                        f"p50 {g.p50_ms:6.1f} p99 {g.p99_ms:6.1f} ms | ratio {row['ratio']:.2f} "
                        f"(target ≥ {TARGETS[function]:.2f}) errors {d.errors + g.errors}",
                        flush=True,
                    )
        finally:
            await triton.close()
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| function | concurrency | direct (req/s) | gateway (req/s) | gateway/direct | target | direct p50/p99 (ms) | gateway p50/p99 (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        d, g = r["direct"], r["gateway"]
        lines.append(
            f"| {r['function']} | {r['concurrency']} | {d['throughput']:.1f} | {g['throughput']:.1f} | "
            f"**{r['ratio']:.2f}** | ≥ {r['target']:.2f} | {d['p50_ms']:.1f} / {d['p99_ms']:.1f} | "
            f"{g['p50_ms']:.1f} / {g['p99_ms']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--address", help="existing gateway (with --triton-url)")
    parser.add_argument("--triton-url")
    parser.add_argument("--requests", type=int, default=200, help="requests per round")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per side")
    parser.add_argument("--concurrency", default="1,4,8")
    args = parser.parse_args()
    jpeg = sorted(STREET_FRAMES.glob("*.jpg"))[0].read_bytes()
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    started = time.time()
    if args.address:
        rows = asyncio.run(
            measure(args.address, args.triton_url, jpeg, args.requests, args.rounds, concurrencies)
        )
    else:
        with tempfile.TemporaryDirectory() as run_dir, LocalMesh(run_dir=Path(run_dir)) as mesh:
            assert mesh.triton is not None
            rows = asyncio.run(
                measure(
                    mesh.address,
                    mesh.triton.grpc_url,
                    jpeg,
                    args.requests,
                    args.rounds,
                    concurrencies,
                )
            )
    payload = {
        "benchmark": "gateway_overhead",
        "date": time.strftime("%Y-%m-%d", time.gmtime(started)),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores, {platform.python_version()}",
        "image": "street frame_000.jpg (768x576 JPEG)",
        "requests_per_round": args.requests,
        "rounds": args.rounds,
        "rows": rows,
    }
    markdown = table(rows)
    path = write_results("gateway_overhead", payload, markdown)
    print(markdown)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
