"""The planner's predictions against measured runs on this machine, and the DiCE-C replay.

    .venv/bin/python -m perf.planner                # profile, record, predict, measure
    .venv/bin/python -m perf.planner --scale 0.5    # fewer tasks per configuration

One profile of this machine (``toolmesh profile``'s code, on a mesh with the default
placement: two ``find`` instances) predicts every configuration; each is then run
for real with the batch runner through the gateway, on a mesh started with that
configuration's placement:

- single-``find`` tasks with 1 and 2 CPU instances of ``find``, concurrency 1, 4, 16;
- the street program (``sdk/toolmesh/data/programs/street_report.py``);
- the five-step image pipeline greyscale → resize → color_depth → rotate → convert_format.

The programs' call graphs are recorded first at concurrency 1 (as ``toolmesh plan
--program`` does; the faster of two recordings), which also scales each function's profiled service time to the
program's own inputs (crops are cheaper than the full frame the profile used); the
hop is the profile's measured gateway cost per call. Writes
``perf/results/planner.json`` (``validation: [{config, predicted_s, measured_s,
error}]``; the measured time is the best of ``--repeat`` runs, all kept), the
profile (``perf/results/planner_profile_cpu-2core.yaml``), the street program's
recorded runs (``perf/results/planner_<program>_trace.jsonl``) and the README table.

The sanity case replays the DiCE-C seed's setting without a mesh: its program's
shape (one detection, then two VQA and two property checks per car), 1000 tasks,
the paper's prices, and GPU profiles scaled from stated assumptions (below); it
says which mix the plan picks and what A100s alone would cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from perf._harness import RESULTS, write_results
from toolmesh import Client, ClientSettings, GrpcTransport
from toolmesh.batch import BatchConfig, read_results, run_batch
from toolmesh.data import STREET_FRAMES, STREET_REPORT
from toolmesh_local.mesh import LocalMesh
from toolmesh_planner.measure import ProfileSettings, profile_device, read_image
from toolmesh_planner.profile import DeviceProfile, ModelProfile, save_profile
from toolmesh_planner.search import NodeType, Target, search
from toolmesh_planner.simulate import ModelSetup, NodeSetup, simulate
from toolmesh_planner.workload import (
    TaskShape,
    Workload,
    input_scales,
    shapes_from_results,
)

MODELS = ["find", "greyscale", "resize", "rotate", "color_depth", "convert_format"]

FIND_ONLY = '''"""One detection per task."""

import toolmesh


async def solve(image):
    return len(await toolmesh.call("find", image=image, object_name="person"))
'''

PIPELINE = '''"""The five-step image pipeline of the serverless image-processing study."""

import toolmesh


async def solve(image):
    grey = await toolmesh.call("greyscale", image=image)
    small = await toolmesh.call("resize", image=grey, width=384, height=288)
    deep = await toolmesh.call("color_depth", image=small, bits=10)
    turned = await toolmesh.call("rotate", image=deep, angle=90)
    out = await toolmesh.call("convert_format", image=turned, format="png")
    return out["media_type"]
'''

#: (program, find instances, concurrency, tasks at scale 1)
CONFIGS: list[tuple[str, int, int, int]] = [
    ("find", 1, 1, 40),
    ("find", 1, 4, 80),
    ("find", 2, 4, 120),
    ("find", 2, 16, 160),
    ("street", 2, 1, 20),
    ("street", 2, 16, 80),
    ("pipeline", 2, 1, 60),
    ("pipeline", 2, 16, 200),
]


def placement(work: Path, instances: int) -> Path:
    path = work / f"placement-{instances}.yaml"
    path.write_text(
        "defaults: {count: 1}\nmodels:\n"
        f"  find: {{count: {instances}, batching: gpu}}\n"
        + "".join(f"  {m}: {{kind: cpu, count: 1}}\n" for m in MODELS[1:])
    )
    return path


def programs(work: Path) -> dict[str, Path]:
    paths = {"street": STREET_REPORT}
    for name, text in (("find", FIND_ONLY), ("pipeline", PIPELINE)):
        paths[name] = work / f"{name}.py"
        paths[name].write_text(text)
    return paths


async def run(address: str, program: Path, tasks: int, concurrency: int, out: Path) -> float:
    out.unlink(missing_ok=True)
    config = BatchConfig(
        program=program, images=STREET_FRAMES, tasks=tasks, out=out, concurrency=concurrency
    )
    summary = await run_batch(config, GrpcTransport.from_settings(ClientSettings.resolve(address)))
    if summary.failed or summary.unfinished:
        errors = [
            record["error"]
            for record in map(json.loads, out.read_text().splitlines())
            if not record.get("ok") and record.get("error")
        ]
        raise RuntimeError(
            f"{program.name}: {summary.failed} failed, {summary.unfinished} unfinished; "
            f"first error: {errors[0] if errors else '(none recorded)'}"
        )
    return summary.seconds


async def record(address: str, program: Path, tasks: int, out: Path) -> list[dict[str, Any]]:
    """Calls of ``tasks`` tasks at concurrency 1, after one warm-up task: the faster of two
    recordings (as with the measured runs, other work on the cores only slows one), left
    in ``out``."""
    await run(address, program, 1, 1, out)
    best: list[dict[str, Any]] = []
    for _ in range(2):
        await run(address, program, tasks, 1, out)
        records = read_results(out)
        if not best or sum(r["seconds"] for r in records) < sum(r["seconds"] for r in best):
            best = records
    out.write_text("".join(json.dumps(r) + "\n" for r in best))
    return best


def predict(
    profile: DeviceProfile,
    shapes: tuple[TaskShape, ...],
    scales: tuple[dict[str, float], dict[str, float]],
    instances: int,
    concurrency: int,
    tasks: int,
) -> float:
    models = {m: ModelSetup(profile.models[m], instances if m == "find" else 1) for m in MODELS}
    routes = {f: m for m, p in profile.models.items() for f in p.functions}
    nodes = [NodeSetup("cpu-2core", models, profile.parallelism)]
    workload = Workload(shapes, tasks, concurrency, *scales)
    # client, gateway and Triton share this machine's two cores
    return simulate(workload, nodes, routes, hop_s=profile.hop_s, colocated_gateway=True).wall_s


async def validate(scale: float, samples: int, repeat: int) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="perf-planner-") as folder:
        work = Path(folder)
        paths = programs(work)
        out = work / "run.jsonl"
        profile: DeviceProfile | None = None
        shapes: dict[str, tuple[TaskShape, ...]] = {}
        scales: dict[str, tuple[dict[str, float], dict[str, float]]] = {}
        for instances in (2, 1):
            mesh = LocalMesh(
                run_dir=work / f"mesh-{instances}",
                placement=placement(work, instances),
                models=MODELS,
                gpus=[],
            )
            with mesh:
                if profile is None:
                    async with Client(mesh.address) as client:
                        functions = [f for f in await client.functions() if f.model in MODELS]
                    profile = await profile_device(
                        mesh.triton.grpc_url,
                        functions,
                        device_type="cpu-2core",
                        image=read_image(None),
                        settings=ProfileSettings(
                            samples=samples, batch_sizes=(), concurrencies=(2, 4)
                        ),
                        description="this machine: 2 vCPU, CPU-only Triton",
                        address=mesh.address,
                        progress=lambda line: print("  profile:", line, flush=True),
                    )
                    save_profile(profile, RESULTS / "planner_profile_cpu-2core.yaml")
                    print(
                        f"parallelism {profile.parallelism:.2f}, hop {profile.hop_s * 1000:.2f} ms",
                        flush=True,
                    )
                    for name, program in paths.items():
                        records = await record(mesh.address, program, 24, out)
                        # the README's worked example plans from the street's
                        shutil.copy(out, RESULTS / f"planner_{name}_trace.jsonl")
                        shapes[name] = shapes_from_results(records)
                        scales[name] = input_scales(records, profile, profile.hop_s)
                        mean = sum(r["seconds"] for r in records) / len(records)
                        alone = predict(profile, shapes[name], scales[name], 2, 1, len(records))
                        print(
                            f"recorded {name}: {mean * 1000:.1f} ms a task (simulated "
                            f"{alone / len(records) * 1000:.1f}), rounds "
                            f"{sorted({s.rounds for s in shapes[name]})}, input scales "
                            + ", ".join(f"{f} {v:.2f}" for f, v in sorted(scales[name][0].items())),
                            flush=True,
                        )
                for name, k, concurrency, tasks in CONFIGS:
                    if k != instances:
                        continue
                    n = max(4, round(tasks * scale))
                    predicted = predict(profile, shapes[name], scales[name], k, concurrency, n)
                    config = f"{name}, find×{k}, concurrency {concurrency}, {n} tasks"
                    # best of `repeat` runs: other work on the shared cores only slows one.
                    # A run with a failed task is recorded (with its error), not timed,
                    # and does not stop the validation; one more run replaces it.
                    runs: list[float] = []
                    failed: list[str] = []
                    while len(runs) < repeat and len(failed) <= repeat:
                        try:
                            runs.append(await run(mesh.address, paths[name], n, concurrency, out))
                        except RuntimeError as exc:
                            failed.append(str(exc))
                            print(f"{config}: a run failed: {exc}", flush=True)
                    if not runs:
                        raise RuntimeError(f"{config}: every run failed: {failed}")
                    measured = min(runs)
                    error = predicted / measured - 1
                    rows.append(
                        {
                            "config": config,
                            "predicted_s": round(predicted, 3),
                            "measured_s": round(measured, 3),
                            "error": round(error, 4),
                            "runs_s": [round(r, 3) for r in runs],
                            **({"failed_runs": failed} if failed else {}),
                        }
                    )
                    print(
                        f"{config:48s} predicted {predicted:7.2f} s  measured {measured:7.2f} s  "
                        f"error {error:+.1%}  (runs {', '.join(f'{r:.2f}' for r in runs)})",
                        flush=True,
                    )
    assert profile is not None
    return {
        "validation": rows,
        "hop_ms": round(profile.hop_s * 1000, 3),
        "parallelism": round(profile.parallelism, 3),
        "input_scales": scales,
    }


# --- the DiCE-C replay -------------------------------------------------------------

#: Per-call service on an A100 (s), chosen so that one task run serially (one
#: detection + 3 cars × 4 calls) takes about the paper's baseline, 141 min / 1000 tasks.
DICE_A100_S = {"find": 1.5, "simple_query": 0.6, "verify_property": 0.55}
#: Assumed time relative to an A100 on these models (FP32-bound mid-size vision
#: transformers: the A6000's FP32 rate is close to the A100's, the A4000's half).
DICE_SLOWDOWN = {"a100": 1.0, "a6000": 1.15, "a4000": 2.0}
#: The paper gives the A100 node ($2.20/h) and the A6000 + A4000 pair ($1.30/h) only;
#: the split of the pair is an assumption (prices.yaml says so too).
DICE_PRICES = {"a100": 2.20, "a6000": 1.00, "a4000": 0.30}
#: Device memory per node (GB) and per model instance (GB, assumed: GLIP-L, BLIP-2
#: with its language model, X-VLM): why the paper put the VQA model on the A6000.
DICE_MEMORY_GB = {"a100": 80.0, "a6000": 48.0, "a4000": 16.0}
DICE_MODEL_GB = {"find": 7.0, "simple_query": 15.0, "verify_property": 4.0}
#: The paper's own A100 speed-up from overlapping calls (141 → 79 min on one node)
#: is read as the GPU running about 1.8 model instances at full speed at once.
DICE_PARALLELISM = 141 / 79


def dice_profile(node: str) -> DeviceProfile:
    from toolmesh_planner.profile import ServiceTime

    return DeviceProfile(
        node,
        {
            m: ModelProfile(
                functions=(m,),
                service={1: ServiceTime.constant(s * DICE_SLOWDOWN[node])},
                kind="KIND_GPU",
                memory_gb=DICE_MODEL_GB[m],
            )
            for m, s in DICE_A100_S.items()
        },
        parallelism=DICE_PARALLELISM,
        description=f"assumed: {DICE_SLOWDOWN[node]}× an A100's time per call",
    )


def dice_replay() -> dict[str, Any]:
    cars = 3
    shape = TaskShape.rounds_of([["find"], ["simple_query", "verify_property"] * 2 * cars])
    workload = Workload((shape,), tasks=1000, concurrency=16)
    deadline = 79 * 60  # the paper's DiCE-C time on one A100 node
    types = {
        n: NodeType(n, p, dice_profile(n), max_nodes=4, memory_gb=DICE_MEMORY_GB[n])
        for n, p in DICE_PRICES.items()
    }
    target = Target(deadline_s=deadline)
    everything = search(workload, list(types.values()), target, hop_s=0.005)
    a100_only = search(workload, [types["a100"]], target, hop_s=0.005)
    paper_mix = search(workload, [types["a6000"], types["a4000"]], target, hop_s=0.005)

    def row(plan: Any) -> dict[str, Any] | None:
        if plan.best is None:
            return None
        return {
            "composition": plan.best.composition.describe(),
            "wall_min": round(plan.best.result.wall_s / 60, 1),
            "usd_per_hour": round(plan.best.usd_per_hour, 3),
            "cost_usd": round(plan.best.cost_usd, 3),
        }

    chosen, alone, mix = row(everything), row(a100_only), row(paper_mix)
    mixed = everything.best is not None and {
        p.node_type for p in everything.best.composition.pools
    } == {"a6000", "a4000"}
    return {
        "setting": "1000 tasks, 16 in flight, deadline 79 min (the paper's DiCE-C time on an A100)",
        "assumptions": {
            "a100_service_s": DICE_A100_S,
            "slowdown_vs_a100": DICE_SLOWDOWN,
            "usd_per_hour": DICE_PRICES,
            "cars_per_image": cars,
            "memory_gb": DICE_MEMORY_GB,
            "model_memory_gb": DICE_MODEL_GB,
            "gpu_parallelism": round(DICE_PARALLELISM, 3),
        },
        "plan_all_types": chosen,
        "a100_only": alone,
        "a6000_a4000_only": mix,
        "picks_a6000_a4000_mix": mixed,
        "saving_vs_a100": (
            round(1 - everything.best.cost_usd / a100_only.best.cost_usd, 3)
            if everything.best is not None and a100_only.best is not None
            else None
        ),
        "paper_saving": 0.72,
    }


def table(payload: dict[str, Any]) -> str:
    lines = [
        f"Profile: this machine, parallelism {payload['parallelism']}, hop {payload['hop_ms']} ms.",
        "",
        "| configuration | predicted (s) | measured (s) | error |",
        "|---|---:|---:|---:|",
    ]
    for row in payload["validation"]:
        lines.append(
            f"| {row['config']} | {row['predicted_s']:.2f} | {row['measured_s']:.2f} | "
            f"{row['error']:+.1%} |"
        )
    dice = payload.get("dice_c")
    if dice:
        lines += [
            "",
            "| DiCE-C replay (1000 tasks, ≤ 79 min) | composition | wall (min) | USD/hour | run cost (USD) |",
            "|---|---|---:|---:|---:|",
        ]
        for label, key in (
            ("plan over A100, A6000, A4000", "plan_all_types"),
            ("A100 only", "a100_only"),
            ("A6000 + A4000 only", "a6000_a4000_only"),
        ):
            r = dice[key]
            if r is None:
                lines.append(f"| {label} | none meets the deadline | | | |")
            else:
                lines.append(
                    f"| {label} | {r['composition']} | {r['wall_min']} | {r['usd_per_hour']} | {r['cost_usd']} |"
                )
        saving = dice["saving_vs_a100"]
        lines += [
            "",
            f"The plan picks the A6000 + A4000 mix: {'yes' if dice['picks_a6000_a4000_mix'] else 'no'}; "
            + (
                f"its run costs {saving:.0%} less than the cheapest A100-only plan "
                if saving is not None
                else "no A100-only plan meets the deadline "
            )
            + f"(the paper: {dice['paper_saving']:.0%}).",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="Multiply every task count.")
    parser.add_argument("--samples", type=int, default=40, help="Profile samples per model.")
    parser.add_argument("--repeat", type=int, default=2, help="Runs per configuration (best kept).")
    parser.add_argument("--dice-only", action="store_true", help="Only the DiCE-C replay.")
    args = parser.parse_args()
    payload: dict[str, Any] = {}
    if not args.dice_only:
        payload.update(asyncio.run(validate(args.scale, args.samples, args.repeat)))
    payload["dice_c"] = dice_replay()
    print(payload["dice_c"], flush=True)
    if args.dice_only:
        return
    path = write_results("planner", payload, table(payload))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
