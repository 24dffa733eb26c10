"""``toolmesh run`` and ``toolmesh report``: the batch runner and its cost report."""

from __future__ import annotations

import asyncio
import json
import os
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
from toolmesh.batch._utilisation import IDLE_PERCENT
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
    seed: Annotated[
        int | None,
        typer.Option(help="Assign images to tasks at random with this seed (default: i mod n)."),
    ] = None,
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
    utilisation: Annotated[
        Path | None,
        typer.Option(
            help="Sample CPU (this process as 'client', plus each --watch group) and GPUs "
            "(NVML) during the run into this JSON-lines file, for `toolmesh report`."
        ),
    ] = None,
    watch: Annotated[
        list[str] | None,
        typer.Option(
            help="With --utilisation: a process group NAME=PID[,PID…] to sample, its "
            "descendants included, e.g. triton=4242 (repeatable)."
        ),
    ] = None,
    address: AddressOpt = None,
) -> None:
    """Run a program over many images with bounded concurrency, resumably, sandboxed by default."""
    from toolmesh.batch import BatchConfig, load_program, run_batch

    program_source(program)
    available = _image_folder(images)  # checked before anything runs
    groups = _watch_groups(watch or [])
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
        seed=seed,
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

    sampler = None
    if utilisation is not None:
        from toolmesh.batch import UtilisationSampler

        try:
            sampler = UtilisationSampler(utilisation, {"client": [os.getpid()], **groups})
        except MissingPart as exc:
            raise fail(str(exc)) from exc
        sampler.start()
    try:
        summary = asyncio.run(main())
    except (OSError, ValueError) as exc:
        raise fail(str(exc), 2) from exc
    finally:
        if sampler is not None:
            sampler.stop()
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


def _watch_groups(items: list[str]) -> dict[str, list[int]]:
    """``NAME=PID[,PID…]`` options as process groups; a usage error if one is malformed."""
    groups: dict[str, list[int]] = {}
    for item in items:
        name, _, pids = item.partition("=")
        try:
            groups.setdefault(name, []).extend(int(p) for p in pids.split(","))
        except ValueError:
            raise fail(f"--watch {item!r}: expected NAME=PID[,PID…]", 2) from None
        if not name or name == "client":
            raise fail(f"--watch {item!r}: give the group a name other than 'client'", 2)
    return groups


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
    utilisation: Annotated[
        Path | None,
        typer.Option(help="Utilisation samples of the run (`toolmesh run --utilisation`)."),
    ] = None,
    questions: Annotated[
        int,
        typer.Option(
            help="LLM operating cost: questions answered by generated programs (0: not shown)."
        ),
    ] = 0,
    prompt_tokens: Annotated[
        float, typer.Option(help="Prompt tokens per question (the codegen prompt).")
    ] = 3000.0,
    completion_tokens: Annotated[
        float, typer.Option(help="Completion tokens per question (the program written).")
    ] = 500.0,
) -> None:
    """Per-function latency statistics, turnaround, wall time, utilisation and cost of a run."""
    from toolmesh.batch import (
        build_report,
        llm_costs,
        load_llm_prices,
        load_prices,
        load_utilisation,
        read_results,
        summarise_utilisation,
    )
    from toolmesh.batch._plots import plot_costs, plot_timeline, plot_utilisation

    if not results.is_file():
        raise fail(f"{results}: {'not a file' if results.exists() else 'no such file'}", 2)
    try:
        records = read_results(results)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise fail(f"{results}: not a JSON-lines results file ({exc})", 2) from exc
    if not all(isinstance(r, dict) and "task" in r for r in records):
        raise fail(f"{results}: not a results file of `toolmesh run` (lines without 'task')", 2)
    samples = None
    try:
        price_table = load_prices(prices)
        llm_table = load_llm_prices(prices) if questions else {}
        nodes = _parse_nodes(node_type or ["cpu-2core"])
        if utilisation is not None:
            samples = load_utilisation(utilisation)
        rep = build_report(
            records,
            nodes,
            price_table,
            utilisation=summarise_utilisation(samples) if samples is not None else None,
        )
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
    if rep.utilisation is not None:
        use = rep.utilisation
        table = Table("utilisation", "mean (%)", "peak (%)", f"idle (< {IDLE_PERCENT:g} %)")
        for g in [*use.groups, use.machine, *use.gpus]:
            unit = "of all cores" if g is use.machine else "GPU" if g in use.gpus else "of a core"
            table.add_row(
                f"{g.name} ({unit})", f"{g.mean:.1f}", f"{g.peak:.1f}", f"{g.idle_fraction:.0%}"
            )
        console.print(table)
        console.print(
            f"{use.samples} samples over {use.seconds:.1f}s"
            + ("" if use.gpus else "; no GPU utilisation (no NVML or no GPU)")
        )
    payload = rep.as_json()
    if questions:
        costs = llm_costs(
            llm_table,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            questions=questions,
        )
        table = Table(
            "LLM", "kind", "per question ($)", f"{questions:,} questions ($)", "vs dearest"
        )
        dearest = max((c.usd for c in costs), default=0.0)
        for c in costs:
            table.add_row(
                c.model,
                "self-hosted" if c.self_hosted else "API",
                f"{c.usd_per_question:.5f}",
                f"{c.usd:,.2f}",
                f"{c.usd / dearest:.2f}" if dearest else "-",
            )
        console.print(table)
        console.print(
            f"{prompt_tokens:g} prompt + {completion_tokens:g} completion tokens per question "
            "(DiCE-C paper: $863 self-hosted vs $8,641 OpenAI API, 0.10)"
        )
        payload["llm"] = {
            "questions": questions,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "models": [vars(c) | {"usd": c.usd} for c in costs],
        }
    if plots is not None:
        per_type = {
            name: rep.wall_s / 3600 * price_table[name] * count
            for name, count in rep.node_types.items()
        }
        try:
            timeline = plot_timeline(records, plots / "timeline.png")
            cost = plot_costs(per_type, plots / "cost.png", title="Cost of this run per node type")
            written = [timeline, cost]
            if samples:
                written.append(plot_utilisation({"run": samples}, plots / "utilisation.png"))
        except MissingPart as exc:
            raise fail(str(exc)) from exc
        console.print(f"plots: {', '.join(str(p) for p in written)}")
    if json_out is not None:
        json_out.write_text(json.dumps(payload, indent=2))
