"""One evaluation from end to end: the registry and a sandbox from the gateway, the
expected answers (reference programs run once, on the same mesh, for every model),
each model's questions, and the scorecard written as JSON, Markdown and a chart.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import toolmesh
from toolmesh_codegen.evaluation.chart import write_chart
from toolmesh_codegen.evaluation.prices import TokenPrice
from toolmesh_codegen.evaluation.questions import Question
from toolmesh_codegen.evaluation.runner import (
    EvalSettings,
    QuestionResult,
    evaluate_model,
    expected_answers,
)
from toolmesh_codegen.evaluation.scorecard import ModelScore, markdown_table, scorecard_json
from toolmesh_codegen.llm import LLMSettings
from toolmesh_codegen.sandbox import Limits, Sandbox

__all__ = ["RESULTS_NAME", "machine", "run_eval", "write_outputs"]

RESULTS_NAME = "codegen_eval"


async def run_eval(
    models: Sequence[LLMSettings],
    questions: Sequence[Question],
    *,
    prices: dict[str, TokenPrice],
    address: str | None = None,
    options: EvalSettings | None = None,
    timeout_s: float = 60.0,
    on_result: Callable[[str, QuestionResult], None] | None = None,
) -> list[ModelScore]:
    """Ask every model every question against the mesh at ``address``.

    Raises:
        ToolmeshError: the gateway cannot be reached.
        SandboxError: a reference program failed, or programs cannot run here.
    """
    async with toolmesh.Client(address) as client:
        functions = await client.functions()
        gateway = client.address
    scores: list[ModelScore] = []
    async with Sandbox(gateway, limits=Limits(timeout_s=timeout_s)) as sandbox:
        expected = await expected_answers(questions, sandbox)
        for settings in models:

            def report(result: QuestionResult, model: str = settings.model) -> None:
                if on_result is not None:
                    on_result(model, result)

            results = await evaluate_model(
                settings,
                questions,
                expected,
                functions=functions,
                sandbox=sandbox,
                options=options,
                on_result=report,
            )
            scores.append(ModelScore.of(settings.model, results, prices))
    return scores


def machine() -> str:
    """This machine in a few words, for the results file."""
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_outputs(
    scores: Sequence[ModelScore], folder: Path, about: dict[str, Any]
) -> tuple[dict[str, Any], str, list[Path]]:
    """Write ``codegen_eval.json``, ``.md`` and (with matplotlib) ``.png`` into ``folder``.

    Returns the JSON document, the Markdown table and the paths written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    document = scorecard_json(
        scores, date=time.strftime("%Y-%m-%d", time.gmtime()), machine=machine(), **about
    )
    table = markdown_table(scores)
    json_path = folder / f"{RESULTS_NAME}.json"
    md_path = folder / f"{RESULTS_NAME}.md"
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    md_path.write_text(table + "\n")
    written = [json_path, md_path]
    chart = folder / f"{RESULTS_NAME}.png"
    if write_chart(scores, chart):
        written.append(chart)
    return document, table, written
