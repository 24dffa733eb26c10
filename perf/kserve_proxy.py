"""perf_analyzer against Triton directly vs through the gateway's KServe v2 proxy.

    .venv/bin/python -m perf.kserve_proxy                 # starts its own mesh
    .venv/bin/python -m perf.kserve_proxy --concurrency 1,2,4

Same model, same input, same concurrency, alternating sides in one run;
prints the ratio gateway/direct and writes perf/results/kserve_proxy.json and
the README table (target ≥ 0.95 for ``find``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from perf._harness import write_results
from toolmesh.data import STREET_FRAMES
from toolmesh_local.mesh import LocalMesh
from toolmesh_local.perf_analyzer import PerfAnalyzerResult, image_input_data, run_perf_analyzer

MODELS = {"find": {"object_name": "person", "threshold": 0.3}, "greyscale": {}}


def best(results: list[PerfAnalyzerResult]) -> PerfAnalyzerResult:
    return max(results, key=lambda r: r.throughput)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", default="1,4")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--measurement-ms", type=int, default=3000)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    jpeg = sorted(STREET_FRAMES.glob("*.jpg"))[0].read_bytes()
    rows = []
    with tempfile.TemporaryDirectory() as run_dir, LocalMesh(run_dir=Path(run_dir)) as mesh:
        assert mesh.triton is not None
        for model in args.models.split(","):
            scalars = MODELS[model]
            data = image_input_data(Path(run_dir) / f"{model}.json", jpeg, **scalars)
            for concurrency in (int(c) for c in args.concurrency.split(",")):
                sides: dict[str, list[PerfAnalyzerResult]] = {"direct": [], "gateway": []}
                for _ in range(args.rounds):
                    for side, url in (("direct", mesh.triton.grpc_url), ("gateway", mesh.address)):
                        sides[side].append(
                            run_perf_analyzer(
                                url,
                                model,
                                input_data=data,
                                concurrency=concurrency,
                                measurement_ms=args.measurement_ms,
                            )
                        )
                d, g = best(sides["direct"]), best(sides["gateway"])
                row = {
                    "model": model,
                    "concurrency": concurrency,
                    "direct": {"throughput": d.throughput, "p50_us": d.p50_us, "p99_us": d.p99_us},
                    "gateway": {"throughput": g.throughput, "p50_us": g.p50_us, "p99_us": g.p99_us},
                    "ratio": g.throughput / d.throughput,
                }
                rows.append(row)
                print(
                    f"{model:10s} c={concurrency:<2d} direct {d.throughput:7.1f}/s | gateway "
                    f"{g.throughput:7.1f}/s | ratio {row['ratio']:.2f}",
                    flush=True,
                )
    lines = [
        "| model | concurrency | Triton direct (infer/s) | through gateway (infer/s) | gateway/direct | direct p50 / p99 (ms) | gateway p50 / p99 (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        d, g = r["direct"], r["gateway"]
        lines.append(
            f"| {r['model']} | {r['concurrency']} | {d['throughput']:.1f} | {g['throughput']:.1f} | "
            f"**{r['ratio']:.2f}** | {d['p50_us'] / 1000:.1f} / {d['p99_us'] / 1000:.1f} | "
            f"{g['p50_us'] / 1000:.1f} / {g['p99_us'] / 1000:.1f} |"
        )
    table = "\n".join(lines)
    write_results(
        "kserve_proxy",
        {
            "benchmark": "kserve_proxy",
            "date": time.strftime("%Y-%m-%d"),
            "tool": "perf_analyzer 2.50.0",
            "rows": rows,
        },
        table,
    )
    print(table)


if __name__ == "__main__":
    main()
