"""``toolmesh eval``: the question set against one or more models, as a scorecard.

Usage mistakes (an unknown question, an unreadable price table, an output path that is
a file) are refused before any request is sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import toolmesh
from toolmesh.cli.common import AddressOpt, console, fail, run_async
from toolmesh_codegen._cli_options import RepairsOpt, ReplanOpt
from toolmesh_codegen._errors import CodegenError
from toolmesh_codegen.evaluation.prices import load_prices
from toolmesh_codegen.evaluation.questions import load_questions, select
from toolmesh_codegen.evaluation.runner import EvalSettings, QuestionResult
from toolmesh_codegen.evaluation.session import run_eval, write_outputs
from toolmesh_codegen.llm import LLMSettings
from toolmesh_codegen.replan import DEFAULT_MAX_REPLANS
from toolmesh_codegen.run import DEFAULT_MAX_REPAIRS

__all__ = ["evaluate"]


def evaluate(
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="A model to evaluate; repeat for several (default TOOLMESH_LLM_MODEL).",
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(help="OpenAI-compatible endpoint (default OPENAI_BASE_URL)."),
    ] = None,
    question: Annotated[
        list[str] | None,
        typer.Option("--question", "-q", help="Only this question id; repeat for several."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Only the first N questions of the set.")
    ] = None,
    questions_file: Annotated[
        Path | None,
        typer.Option("--questions", help="Another question set, in questions.yaml's shape."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for codegen_eval.json, .md and .png.")] = Path(
        "eval-results"
    ),
    repairs: RepairsOpt = DEFAULT_MAX_REPAIRS,
    replan: ReplanOpt = DEFAULT_MAX_REPLANS,
    prices: Annotated[
        Path | None,
        typer.Option(help="Token prices (YAML, llm_models: …); default the bundled table."),
    ] = None,
    address: AddressOpt = None,
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Wall-clock seconds per program run.")
    ] = 60.0,
) -> None:
    """Score how well LLMs write programs for the mesh: valid-program rate, accuracy,
    repairs, re-plans, run-time errors, tokens, cost, latency and the parallel speedup,
    over the shipped question set (street frames and synthetic scenes).

    The LLM is any OpenAI-compatible endpoint: --base-url / OPENAI_BASE_URL,
    OPENAI_API_KEY.
    """
    try:
        chosen = select(load_questions(questions_file), question or [])
        table = load_prices(prices)
    except (ValueError, OSError) as exc:
        raise fail(str(exc), 2) from exc
    if limit is not None:
        chosen = chosen[:limit]
    if out.exists() and not out.is_dir():
        raise fail(f"{out}: not a folder (for --out)", 2)
    names = list(dict.fromkeys(model or [LLMSettings.resolve().model]))
    settings = [LLMSettings.resolve(model=name, base_url=base_url) for name in names]
    try:
        for each in settings:
            each.require_key()
    except CodegenError as exc:
        raise fail(str(exc)) from exc

    def progress(name: str, result: QuestionResult) -> None:
        shown = "" if result.error is None else f"  ({result.error})"
        console.print(
            f"{name:28s} {result.id:26s} {result.outcome.value:8s}{shown}",
            markup=False,
            highlight=False,
            overflow="ellipsis",
            no_wrap=True,
        )

    options = EvalSettings(max_repairs=repairs, max_replans=replan)
    try:
        scores = run_async(
            run_eval(
                settings,
                chosen,
                prices=table,
                address=address,
                options=options,
                timeout_s=timeout,
                on_result=progress,
            )
        )
    except (CodegenError, toolmesh.ToolmeshError) as exc:
        raise fail(str(exc)) from exc
    endpoint = settings[0].base_url or "https://api.openai.com/v1"
    _, markdown, written = write_outputs(scores, out, {"llm_endpoint": endpoint})
    console.print(markdown, markup=False, highlight=False)
    for path in written:
        console.print(f"wrote {path}", highlight=False)
