"""``toolmesh ask``, ``toolmesh parallelize`` and ``toolmesh eval``: the codegen agent on the
command line.

:func:`register` is this part's ``toolmesh.cli`` entry point: the client's CLI
calls it, so the commands exist exactly when ``toolmesh-codegen`` is installed.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.rule import Rule
from rich.syntax import Syntax

import toolmesh
from toolmesh.cli.common import (
    AddressOpt,
    console,
    err,
    err_line,
    fail,
    image_file,
    program_source,
    run_async,
)
from toolmesh.wire import result_to_json
from toolmesh_codegen._cli_options import GraphFormatOpt, GraphOpt, RepairsOpt, ReplanOpt
from toolmesh_codegen._errors import CodegenError, ValidationError
from toolmesh_codegen.evaluation.command import evaluate
from toolmesh_codegen.graph import GraphFormat, write_graph
from toolmesh_codegen.llm import LLMClient, LLMSettings
from toolmesh_codegen.parallelize import plan
from toolmesh_codegen.replan import DEFAULT_MAX_REPLANS, answer
from toolmesh_codegen.run import DEFAULT_MAX_REPAIRS
from toolmesh_codegen.sandbox import Limits, Sandbox

__all__ = ["ask", "parallelize_file", "register"]


def _program(title: str, source: str) -> None:
    console.print(Rule(title, align="left"))
    console.print(Syntax(source.rstrip("\n"), "python", theme="ansi_dark", line_numbers=False))


def _timing(label: str, result: Any) -> str:
    return (
        f"{label:9s} {result.elapsed_s * 1000:8.1f} ms  {result.calls:3d} calls  "
        f"{result.rounds:3d} rounds"
    )


def _graph_format(path: Path | None, named: str | None) -> GraphFormat | None:
    """The format to write ``--graph`` in, checked before any work is done (usage: exit 2)."""
    if path is None:
        if named is not None:
            raise fail("--graph-format needs --graph FILE", 2)
        return None
    try:
        chosen = GraphFormat.for_path(path, named)
    except ValueError as exc:
        raise fail(str(exc), 2) from exc
    if not path.parent.is_dir():
        raise fail(f"{path.parent}: no such directory (for --graph)", 2)
    return chosen


def ask(
    question: str,
    image: Annotated[
        Path | None, typer.Option("--image", "-i", help="The picture the question is about.")
    ] = None,
    save: Annotated[
        Path | None, typer.Option(help="Write the parallel program to this file.")
    ] = None,
    address: AddressOpt = None,
    model: Annotated[
        str | None, typer.Option(help="LLM model (default TOOLMESH_LLM_MODEL or gpt-4o-mini).")
    ] = None,
    repairs: RepairsOpt = DEFAULT_MAX_REPAIRS,
    replan: ReplanOpt = DEFAULT_MAX_REPLANS,
    timeout: Annotated[float, typer.Option(help="Wall-clock seconds per program run.")] = 60.0,
    graph: GraphOpt = None,
    graph_format: GraphFormatOpt = None,
) -> None:
    """Answer a question about an image: an LLM writes a serial program against the live
    registry; toolmesh checks it, parallelizes it and runs both in a sandbox.

    The LLM is any OpenAI-compatible endpoint: OPENAI_BASE_URL, OPENAI_API_KEY.
    """
    if image is not None:
        try:
            image_file("image", str(image))
        except toolmesh.ArgumentError as exc:
            raise fail(str(exc), 2) from exc
    fmt = _graph_format(graph, graph_format)
    options = _AskOptions(image, save, address, model, repairs, replan, timeout, graph, fmt)
    try:
        code = run_async(_ask(question, options))
    except (CodegenError, toolmesh.ToolmeshError) as exc:
        raise fail(str(exc)) from exc
    if code:
        raise typer.Exit(code)


@dataclass(frozen=True, slots=True)
class _AskOptions:
    image: Path | None
    save: Path | None
    address: str | None
    model: str | None
    repairs: int
    replans: int
    timeout: float
    graph: Path | None
    graph_format: GraphFormat | None


async def _ask(question: str, options: _AskOptions) -> int:
    async with toolmesh.Client(options.address) as client:
        functions = await client.functions()
        gateway = client.address
    inputs: dict[str, Any] = {"image": options.image} if options.image is not None else {}
    async with (
        LLMClient(LLMSettings.resolve(model=options.model)) as llm,
        Sandbox(gateway, limits=Limits(timeout_s=options.timeout)) as sandbox,
    ):
        with console.status("asking the LLM and running its program…"):
            try:
                solution = await answer(
                    question,
                    functions=functions,
                    llm=llm,
                    sandbox=sandbox,
                    inputs=inputs,
                    max_repairs=options.repairs,
                    max_replans=options.replans,
                )
            except TypeError as exc:
                err_line(f"{exc}: pass the picture with --image")
                return 2
    generation = solution.generation
    for failure in solution.failures:
        err.print(f"re-planned after a failed run: {failure}", markup=False, highlight=False)
    tries = len(generation.attempts)
    replanned = f", {solution.replans} re-plan{'s' if solution.replans != 1 else ''}"
    _program(
        f"serial program ({generation.model}, {tries} attempt{'s' if tries > 1 else ''}"
        f"{replanned if solution.replans else ''}, {solution.usage})",
        generation.serial,
    )
    plan = generation.plan
    rounds = "?" if plan.rounds is None else str(plan.rounds)
    _program(
        f"parallel program ({rounds} rounds, critical path {plan.critical_path})",
        generation.parallel,
    )
    if options.save is not None:
        options.save.write_text(generation.parallel)
        console.print(f"saved the parallel program to {options.save}")
    if options.graph is not None:
        write_graph(plan.graph, options.graph, options.graph_format)
        console.print(f"wrote the plan's graph to {options.graph}")
    serial, parallel = solution.serial, solution.parallel
    assert parallel is not None
    if parallel.stdout:
        console.print(Rule("program output", align="left"))
        console.print(parallel.stdout.rstrip("\n"), markup=False, highlight=False)
    console.print(Rule("answer", align="left"))
    shown = json.dumps(result_to_json(parallel.value, None, "answer"), indent=2, default=str)
    console.print(shown, markup=False, highlight=False)
    console.print(Rule("timing", align="left"))
    console.print(_timing("serial", serial), markup=False)
    speedup = serial.elapsed_s / parallel.elapsed_s if parallel.elapsed_s > 0 else float("nan")
    console.print(_timing("parallel", parallel) + f"  {speedup:.2f}x", markup=False)
    if serial.value != parallel.value or serial.stdout != parallel.stdout:
        err.print("[red]the serial and parallel programs disagree[/red] (please report this)")
        return 1
    return 0


def parallelize_file(
    path: Annotated[Path, typer.Argument(help="A serial program with async def solve(...).")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    graph: GraphOpt = None,
    graph_format: GraphFormatOpt = None,
) -> None:
    """Rewrite a serial program so that its independent calls run concurrently."""
    fmt = _graph_format(graph, graph_format)
    source = program_source(path)
    try:
        result = plan(source)
    except ValidationError as exc:
        raise fail(f"{path}: {exc}", 2) from exc
    if output is None:
        sys.stdout.write(result.source)
    else:
        output.write_text(result.source)
    if graph is not None:
        write_graph(result.graph, graph, fmt)
    rounds = "data-dependent" if result.rounds is None else str(result.rounds)
    serial = "data-dependent" if result.serial_rounds is None else str(result.serial_rounds)
    err.print(
        f"{result.calls} call sites; rounds {rounds} (serial {serial}), "
        f"critical path {result.critical_path if result.critical_path is not None else 'data-dependent'}",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add ``ask``, ``parallelize`` and ``eval`` to the ``toolmesh`` CLI (the entry point)."""
    app.command()(ask)
    app.command("parallelize")(parallelize_file)
    app.command("eval")(evaluate)
