"""``toolmesh run`` and ``toolmesh report``: the batch runner and its cost report."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

import toolmesh
from toolmesh._extensions import MissingPart, load
from toolmesh.cli.common import AddressOpt, app, console, err, fail, program_source, run_async


def _image_folder(images: Path) -> int:
    """How many images ``images`` holds; a usage error if it is no folder of images."""
    from toolmesh.batch import list_images

    if not images.is_dir():
        raise fail(f"{images}: {'not a folder' if images.exists() else 'no such folder'}", 2)
    try:
        return len(list_images(images))
    except ValueError as exc:
        raise fail(str(exc), 2) from exc


def _sandboxed_solver(address: str | None) -> Any:
    """A solver factory that runs each task in the codegen sandbox, checked against the registry.

    Refuses, naming ``--trusted``, where toolmesh-codegen is missing or the kernel
    gives no isolation: untrusted code never runs weaker than the sandbox.
    """
    try:
        codegen = load(
            "codegen",
            part="codegen",
            feature="`toolmesh run` (sandboxed; --trusted runs your own code in-process)",
        )
    except MissingPart as exc:
        raise fail(str(exc)) from exc
    try:
        codegen.require_isolation()
    except codegen.IsolationUnavailable as exc:
        raise fail(str(exc)) from exc

    async def registry() -> list[toolmesh.FunctionInfo]:
        async with toolmesh.Client(address) as client:
            return await client.functions()

    functions = run_async(registry())

    def factory(path: Path) -> Any:
        try:
            return codegen.batch.sandboxed_solver(path, functions=functions)
        except codegen.ValidationError as exc:  # a usage mistake: the program breaks the rules
            raise ValueError(f"{path}: {exc}") from exc

    return factory


@app.command()
def run(
    program: Annotated[Path, typer.Argument(help="Python file defining `async def solve(image)`.")],
    images: Annotated[Path, typer.Option(help="Folder of images; task i runs on image i mod n.")],
    out: Annotated[Path, typer.Option(help="JSON-lines results file.")] = Path("results.jsonl"),
    tasks: Annotated[int, typer.Option(help="Number of tasks.")] = 0,
    concurrency: Annotated[int, typer.Option(help="Tasks in flight at once.")] = 8,
    resume: Annotated[bool, typer.Option(help="Skip tasks already in --out.")] = False,
    trusted: Annotated[
        bool,
        typer.Option(
            help="Run the program in this process, unsandboxed: only for code you wrote. "
            "Without it the program runs in the codegen sandbox (toolmesh-codegen) and is "
            "checked against the registry first, as toolmesh.codegen.run does."
        ),
    ] = False,
    baseline: Annotated[
        bool,
        typer.Option(
            help="All models in this process, serial: the paper's monolith (implies --trusted)."
        ),
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds per call.")] = 120.0,
    address: AddressOpt = None,
) -> None:
    """Run a program over many images with bounded concurrency, resumably, sandboxed by default."""
    from toolmesh.batch import BatchConfig, load_program, run_batch

    program_source(program)
    available = _image_folder(images)  # checked before anything runs
    count = tasks or available
    if baseline:
        try:
            baseline_transport = load("inprocess", part="local", feature="--baseline")
        except MissingPart as exc:
            raise fail(str(exc)) from exc
    factory = load_program if trusted or baseline else _sandboxed_solver(address)
    try:  # the program is loaded (trusted) or checked (sandboxed) before any progress is drawn
        solve = factory(program)
    except (OSError, ValueError) as exc:
        raise fail(str(exc), 2) from exc
    config = BatchConfig(
        program=program,
        images=images,
        tasks=count,
        out=out,
        concurrency=1 if baseline else concurrency,
        resume=resume,
        timeout=timeout,
        label="baseline" if baseline else "toolmesh",
        solver=lambda _program: solve,
    )

    async def main() -> Any:
        if baseline:
            transport: Any = baseline_transport()
        else:
            settings = toolmesh.ClientSettings.resolve(address)
            transport = toolmesh.GrpcTransport.from_settings(settings)
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(show_speed=True),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=err, transient=False) as progress:
            bar = progress.add_task(config.label, total=count)
            if resume:
                from toolmesh.batch import read_results

                progress.update(bar, completed=len({r["task"] for r in read_results(out)}))
            return await run_batch(config, transport, on_task=lambda _record: progress.advance(bar))

    try:
        summary = asyncio.run(main())
    except (OSError, ValueError) as exc:
        raise fail(str(exc), 2) from exc
    console.print(
        f"{summary.ok} ok, {summary.failed} failed, {summary.skipped} already done, "
        f"{len(summary.unfinished)} unfinished in {summary.seconds:.1f}s "
        f"({(summary.ok + summary.failed) / max(summary.seconds, 1e-9):.2f} tasks/s) → {out}"
    )
    if summary.unfinished:
        err.print(
            f"[yellow]{len(summary.unfinished)} task(s) still failed transiently after retries; "
            "run again with --resume[/yellow]"
        )
        raise typer.Exit(1)


def _parse_nodes(items: list[str]) -> dict[str, int]:
    nodes: dict[str, int] = {}
    for item in items:
        name, _, count = item.partition("=")
        nodes[name] = nodes.get(name, 0) + (int(count) if count else 1)
    return nodes


@app.command()
def report(
    results: Annotated[Path, typer.Argument(help="Results file from `toolmesh run`.")],
    node_type: Annotated[
        list[str] | None,
        typer.Option("--node-type", help="Node type used, NAME or NAME=COUNT (repeatable)."),
    ] = None,
    prices: Annotated[
        Path | None, typer.Option(help="Price table YAML (default: bundled).")
    ] = None,
    plots: Annotated[
        Path | None, typer.Option(help="Directory for timeline and cost PNGs.")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the report as JSON.")
    ] = None,
) -> None:
    """Per-function latency statistics, turnaround, wall time and cost of a run."""
    from toolmesh.batch import build_report, load_prices, read_results
    from toolmesh.batch._plots import plot_costs, plot_timeline

    if not results.is_file():
        raise fail(f"{results}: {'not a file' if results.exists() else 'no such file'}", 2)
    try:
        records = read_results(results)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise fail(f"{results}: not a JSON-lines results file ({exc})", 2) from exc
    if not all(isinstance(r, dict) and "task" in r for r in records):
        raise fail(f"{results}: not a results file of `toolmesh run` (lines without 'task')", 2)
    try:
        price_table = load_prices(prices)
        nodes = _parse_nodes(node_type or ["cpu-2core"])
        rep = build_report(records, nodes, price_table)
    except (OSError, ValueError, KeyError) as exc:
        raise fail(str(exc), 2) from exc
    table = Table("function", "calls", "mean (ms)", "stdev (ms)", "CV", "p50 (ms)", "p99 (ms)")
    for f in [*rep.functions, rep.turnaround]:
        table.add_row(
            f.name if f is not rep.turnaround else "[bold]task turnaround[/bold]",
            str(f.count),
            f"{f.mean_s * 1000:.1f}",
            f"{f.stdev_s * 1000:.1f}",
            f"{f.cv:.2f}",
            f"{f.p50_s * 1000:.1f}",
            f"{f.p99_s * 1000:.1f}",
        )
    console.print(table)
    nodes_text = ", ".join(f"{n}×{c}" for n, c in rep.node_types.items())
    console.print(
        f"{rep.tasks} tasks ({rep.ok} ok, {rep.failed} failed) in {rep.wall_s:.1f}s wall "
        f"= {rep.tasks_per_second:.2f} tasks/s on {nodes_text} (${rep.usd_per_hour:.4g}/h)\n"
        f"cost ${rep.cost_usd:.6f}; projected to 100,000 images: ${rep.projected_usd:.2f}"
    )
    if plots is not None:
        per_type = {
            name: rep.wall_s / 3600 * price_table[name] * count
            for name, count in rep.node_types.items()
        }
        try:
            timeline = plot_timeline(records, plots / "timeline.png")
            costs = plot_costs(per_type, plots / "cost.png", title="Cost of this run per node type")
        except MissingPart as exc:
            raise fail(str(exc)) from exc
        console.print(f"plots: {timeline}, {costs}")
    if json_out is not None:
        json_out.write_text(json.dumps(rep.as_json(), indent=2))
