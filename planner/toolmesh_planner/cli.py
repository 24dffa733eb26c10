"""``toolmesh profile`` and ``toolmesh plan``: this part's commands on the client's CLI.

:func:`register` is the ``toolmesh.cli`` entry point, so the commands exist exactly
when ``toolmesh-planner`` is installed. Errors follow the CLI's convention: one
``error:`` line, exit 2 for a usage mistake, 1 for a failed operation.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from tritonclient.utils import InferenceServerException

import toolmesh
from toolmesh.cli.common import AddressOpt, console, err, fail, run_async
from toolmesh.local_state import MeshState, default_run_dir
from toolmesh_planner.explain import explain_lines
from toolmesh_planner.measure import ProfileSettings, profile_device, read_image
from toolmesh_planner.output import pool_name, summary, write_overlay
from toolmesh_planner.prices import load_node_prices
from toolmesh_planner.profile import DeviceProfile, ProfileError, load_profile, save_profile
from toolmesh_planner.search import NodeType, PlanError, Target, search
from toolmesh_planner.workload import (
    Workload,
    WorkloadError,
    function_hops,
    input_scales,
    shapes_from_results,
)

__all__ = ["plan_command", "profile_command", "register"]


def _ints(text: str, option: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise fail(f"{option}: expected comma-separated integers, got {text!r}", 2) from exc
    if any(v < 1 for v in values):
        raise fail(f"{option}: values must be at least 1", 2)
    return values


def _triton_url(given: str | None) -> str:
    if given:
        return given
    state = MeshState.load(default_run_dir())
    if state is not None and state.triton_urls:
        return state.triton_urls[0]
    return "localhost:8001"


def profile_command(
    device_type: Annotated[
        str,
        typer.Option(
            "--device-type",
            help="Node type this device is (a name of prices.yaml, e.g. cpu-2core).",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Profile file (.yaml or .json).")],
    triton_url: Annotated[
        str | None,
        typer.Option(
            help="Triton gRPC URL (default: the mesh `toolmesh up` started, or localhost:8001)."
        ),
    ] = None,
    function: Annotated[
        list[str] | None,
        typer.Option(
            "--function",
            "-f",
            help="Profile this function's model (repeat; default: all available).",
        ),
    ] = None,
    samples: Annotated[int, typer.Option(help="Requests per service-time distribution.")] = 30,
    batch_sizes: Annotated[
        str, typer.Option(help="Batch sizes to time, for models that batch.")
    ] = "2,4,8",
    concurrency: Annotated[
        str, typer.Option(help="Concurrencies for the throughput points.")
    ] = "2,4",
    image: Annotated[
        Path | None,
        typer.Option(help="Image the requests carry (default: a bundled street frame)."),
    ] = None,
    description: Annotated[str, typer.Option(help="What the device is, in words.")] = "",
    address: AddressOpt = None,
) -> None:
    """Measure each model's service times through Triton into a profile of this device type.

    The gateway (--address) is asked only which model serves each function and what
    its parameters are; every request goes to Triton itself, as perf_analyzer does.
    """
    if samples < 2:
        raise fail("--samples: at least 2", 2)
    settings = ProfileSettings(
        samples=samples,
        batch_samples=max(2, samples // 3),
        batch_sizes=_ints(batch_sizes, "--batch-sizes"),
        concurrencies=_ints(concurrency, "--concurrency"),
    )
    if image is not None and not image.is_file():
        raise fail(f"{image}: no such file", 2)
    url = _triton_url(triton_url)
    wanted = set(function or [])

    async def main() -> DeviceProfile:
        async with toolmesh.Client(address) as client:
            functions = await client.functions()
        unknown = wanted - {f.name for f in functions}
        if unknown:
            raise fail(f"unknown function(s): {', '.join(sorted(unknown))}", 2)
        chosen = [f for f in functions if (f.name in wanted if wanted else f.available)]
        return await profile_device(
            url,
            chosen,
            device_type=device_type,
            image=read_image(image),
            settings=settings,
            description=description,
            address=address,
            progress=lambda line: err.print(line, highlight=False, markup=False, soft_wrap=True),
        )

    try:
        profile = run_async(main())
    except InferenceServerException as exc:
        raise fail(f"Triton at {url}: {exc.message()}") from exc
    save_profile(profile, out)
    console.print(
        f"profiled {len(profile.models)} model(s) on {device_type} "
        f"(parallelism {profile.parallelism:.2f}) → {out}"
    )


def _records(
    results: Path | None,
    program: Path | None,
    images: Path | None,
    sample_tasks: int,
    tasks: int | None,
    address: str | None,
) -> tuple[list[dict[str, Any]], int]:
    """The recorded tasks of the workload, and how many tasks the run will have."""
    if (results is None) == (program is None):
        raise fail("give the workload as --results FILE or --program FILE", 2)
    if results is not None:
        from toolmesh.batch import read_results

        if not results.is_file():
            raise fail(f"{results}: no such file", 2)
        try:
            records = read_results(results)
        except (ValueError, UnicodeDecodeError) as exc:
            raise fail(f"{results}: not a results file of `toolmesh run`: {exc}", 2) from exc
        return records, tasks or len(records)
    else:
        assert program is not None
        from toolmesh.data import STREET_FRAMES
        from toolmesh_planner.record import record_program

        if not program.is_file():
            raise fail(f"{program}: no such file", 2)
        if tasks is None:
            raise fail("--program needs --tasks (how many tasks the run will have)", 2)
        recorded = run_async(
            record_program(program, images or STREET_FRAMES, tasks=sample_tasks, address=address)
        )
        return recorded, tasks


def _workload(
    records: list[dict[str, Any]],
    tasks: int,
    concurrency: int,
    reference: DeviceProfile | None,
    hop_s: float,
) -> Workload:
    """The call graphs of ``records``; with a ``reference`` profile (the device they were
    recorded on), each function's service and hop scaled to the workload's own inputs."""
    shapes = shapes_from_results(records)
    if reference is None:
        return Workload(shapes, tasks, concurrency)
    scales, hops = input_scales(records, reference, hop_s)
    return Workload(shapes, tasks, concurrency, scales, hops)


def _node_types(
    profiles: list[Path], prices_file: Path | None, chosen: list[str] | None, max_nodes: int
) -> list[NodeType]:
    prices = load_node_prices(prices_file)
    loaded = [load_profile(p) for p in profiles]
    by_type: dict[str, DeviceProfile] = {}
    for profile in loaded:
        if profile.device_type not in prices:
            raise fail(
                f"profile of {profile.device_type!r}: no such node type in the price file "
                f"(known: {', '.join(sorted(prices))})",
                2,
            )
        by_type[profile.device_type] = profile
    names = chosen or sorted(by_type)
    missing = [n for n in names if n not in by_type]
    if missing:
        raise fail(f"no profile for node type(s): {', '.join(missing)} (pass --profile)", 2)
    return [
        NodeType(
            n,
            prices[n].usd_per_hour,
            by_type[n],
            max_nodes,
            prices[n].gpu_product,
            prices[n].memory_gb,
        )
        for n in names
    ]


def plan_command(
    profile: Annotated[
        list[Path],
        typer.Option("--profile", "-p", help="A device profile (repeat, one per node type)."),
    ],
    results: Annotated[
        Path | None, typer.Option(help="Workload: a results file of `toolmesh run`.")
    ] = None,
    program: Annotated[
        Path | None,
        typer.Option(
            help="Workload: a program, run here (trusted) on --sample-tasks images to record its calls."
        ),
    ] = None,
    images: Annotated[
        Path | None, typer.Option(help="Images for --program (default: the bundled street frames).")
    ] = None,
    sample_tasks: Annotated[int, typer.Option(help="Tasks of --program to record.")] = 4,
    tasks: Annotated[
        int | None, typer.Option(help="Tasks the run will have (default: the results file's).")
    ] = None,
    concurrency: Annotated[
        int, typer.Option(help="Tasks in flight (toolmesh run --concurrency).")
    ] = 16,
    deadline: Annotated[
        float | None, typer.Option(help="Target: seconds for the whole run.")
    ] = None,
    tasks_per_hour: Annotated[float | None, typer.Option(help="Target: throughput.")] = None,
    prices: Annotated[
        Path | None, typer.Option(help="Price file (default: the batch report's prices.yaml).")
    ] = None,
    node_type: Annotated[
        list[str] | None,
        typer.Option(
            "--node-type", "-n", help="Node types to choose from (default: every profiled one)."
        ),
    ] = None,
    max_nodes: Annotated[int, typer.Option(help="Nodes per pool at most.")] = 8,
    max_instances: Annotated[int, typer.Option(help="Instances per model per node at most.")] = 2,
    hop_ms: Annotated[
        float | None,
        typer.Option(
            help="Hop per call, client → gateway → Triton and back "
            "(default: the --recorded-on profile's measured one, else 2 ms)."
        ),
    ] = None,
    recorded_on: Annotated[
        str | None,
        typer.Option(
            help="Node type the workload was recorded on: its calls' times calibrate "
            "each function's inputs against that profile (default: the first profile's)."
        ),
    ] = None,
    calibrate: Annotated[
        bool, typer.Option(help="Scale service times to the workload's own inputs.")
    ] = True,
    colocated_gateway: Annotated[
        bool,
        typer.Option(
            help="The client and gateway share the Triton node's device (one machine, "
            "`toolmesh up`), rather than run on nodes of their own."
        ),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Write placement.yaml, the kustomize overlay and plan.json here."
        ),
    ] = None,
    deploy: Annotated[
        Path | None,
        typer.Option(help="The repository's deploy/ folder, for the overlay's relative paths."),
    ] = None,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain", help="Say why this mix, and what the next-cheaper one misses by."
        ),
    ] = False,
    address: AddressOpt = None,
) -> None:
    """Pick the cheapest mix of node types, counts and instance groups that meets a target.

    Each candidate composition is judged by simulating the workload's call graphs on it.
    """
    if concurrency < 1 or sample_tasks < 1 or max_nodes < 1 or max_instances < 1:
        raise fail("--concurrency, --sample-tasks, --max-nodes and --max-instances: at least 1", 2)
    if tasks is not None and tasks < 1:
        raise fail("--tasks: at least 1", 2)
    if hop_ms is not None and hop_ms < 0:
        raise fail("--hop-ms: not negative", 2)
    try:
        target = Target(deadline_s=deadline, tasks_per_hour=tasks_per_hour)
        types = _node_types(profile, prices, node_type, max_nodes)
        profiles = {t.name: t.profile for t in types}
        reference_name = recorded_on or types[0].name
        if reference_name not in profiles:
            raise fail(f"--recorded-on {reference_name}: no profile of that node type", 2)
        reference = profiles[reference_name]
        hop_s = hop_ms / 1000 if hop_ms is not None else (reference.hop_s or 0.002)
        records, count = _records(results, program, images, sample_tasks, tasks, address)
        workload = _workload(records, count, concurrency, reference if calibrate else None, hop_s)
        if hop_ms is not None:  # the plan's hop, for every call
            workload = replace(workload, hops={})
        elif not calibrate:  # the profile's own measurement, function by function
            workload = replace(workload, hops=function_hops(workload.functions(), reference))
        plan = search(
            workload,
            types,
            target,
            hop_s=hop_s,
            instance_options=tuple(range(1, max_instances + 1)),
            colocated_gateway=colocated_gateway,
        )
    except (PlanError, ProfileError, WorkloadError, ValueError) as exc:
        raise fail(str(exc), 2) from exc
    by_name = {t.name: t for t in types}
    if plan.best is None:
        for line in explain_lines(plan, by_name):
            err.print(line, highlight=False, markup=False, soft_wrap=True)
        raise fail(f"no composition of {', '.join(by_name)} meets {target.describe()}")
    best = plan.best
    data = summary(best, by_name)
    console.print(f"plan: {data['composition']}", highlight=False, markup=False, soft_wrap=True)
    console.print(
        f"predicted wall {best.result.wall_s:.1f} s for {workload.tasks} tasks "
        f"(target {target.describe()}: ≤ {best.limit_s:.1f} s), "
        f"{best.usd_per_hour:.4g} USD/hour, run cost {best.cost_usd:.4g} USD",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    for name, pool in data["pools"].items():
        models = ", ".join(
            f"{m} ×{i} {pool['instance_utilisation'].get(m, 0.0):.0%}"
            for m, i in pool["models"].items()
        )
        console.print(
            f"  pool {name}: {pool['count']}× {pool['node_type']}, device "
            f"{pool['device_utilisation']:.0%} busy; {models}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    if explain:
        for line in explain_lines(plan, by_name):
            console.print(line, highlight=False, markup=False, soft_wrap=True)
    if out is not None:
        _write(out, deploy, plan, by_name, data)


def _write(
    out: Path, deploy: Path | None, plan: Any, types: dict[str, NodeType], data: dict[str, Any]
) -> None:
    base, triton_pool = "../../base", "../../../triton-pool"
    if deploy is not None:
        base = os.path.relpath(deploy / "base", out)
        triton_pool = os.path.relpath(deploy / "triton-pool", out / "pool-x")
    written = write_overlay(out, plan.best.composition, types, base=base, triton_pool=triton_pool)
    document = {
        **data,
        "target": plan.target.describe(),
        "tasks": plan.workload.tasks,
        "concurrency": plan.workload.concurrency,
        "explain": explain_lines(plan, types),
        "pool_names": {p.node_type: pool_name(p.node_type) for p in plan.best.composition.pools},
    }
    (out / "plan.json").write_text(json.dumps(document, indent=1) + "\n")
    console.print(
        f"wrote {len(written) + 1} files to {out} "
        "(placement.yaml, kustomization.yaml, pool-*/, plan.json)",
        markup=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    """Add ``profile`` and ``plan`` to the ``toolmesh`` CLI (the entry point)."""
    app.command("profile")(profile_command)
    app.command("plan")(plan_command)
