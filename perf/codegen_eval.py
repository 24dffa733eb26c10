"""Codegen eval: `toolmesh eval`'s scorecard for two models, from recorded answers.

    .venv/bin/python -m perf.codegen_eval                  # starts its own mesh
    .venv/bin/python -m perf.codegen_eval --address localhost:50051

The LLM endpoint is the local replay server of the tests (tests/codegen/replay_server.py)
answering with hand-written recordings (tests/codegen/replays/eval/*.yaml): some
answers are right, some wrong, invalid or failing at run time, so the whole pipeline
is exercised (validation and repair, sandboxed runs, re-planning, scoring, cost) on the
real mesh, without a network. The accuracy figures are therefore those of the
recordings, not of the models they are named after; point `toolmesh eval --base-url`
at a real endpoint to score a model. Writes perf/results/codegen_eval.{json,md,png}
and the README table.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from perf._harness import RESULTS, write_results
from tests.codegen.eval_replays import EvalResponder, load_recordings
from tests.codegen.replay_server import ReplayServer
from toolmesh_codegen.evaluation import (
    EvalSettings,
    ModelScore,
    QuestionResult,
    load_prices,
    load_questions,
    markdown_table,
    run_eval,
    scorecard_json,
)
from toolmesh_codegen.evaluation.chart import write_chart
from toolmesh_codegen.evaluation.session import machine
from toolmesh_codegen.llm import LLMSettings
from toolmesh_local.mesh import LocalMesh

MODELS = ["gpt-4o-mini", "qwen2.5-coder-7b-instruct"]


def progress(model: str, result: QuestionResult) -> None:
    error = f"  ({result.error})" if result.error else ""
    print(f"{model:28s} {result.id:24s} {result.outcome.value:8s}{error}"[:200], flush=True)


async def evaluate(address: str, models: list[str]) -> tuple[list[ModelScore], str]:
    questions = load_questions()
    responder = EvalResponder(questions, load_recordings())
    with ReplayServer(respond=responder) as server:
        settings = [
            LLMSettings.resolve(model=m, base_url=server.base_url, api_key="replay", max_retries=0)
            for m in models
        ]
        scores = await run_eval(
            settings,
            questions,
            prices=load_prices(),
            address=address,
            options=EvalSettings(max_repairs=2, max_replans=2),
            on_result=progress,
        )
    return scores, server.base_url


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--address", help="an existing gateway (default: start a mesh)")
    parser.add_argument("--model", action="append", help="recorded models (default: both)")
    args = parser.parse_args()
    models = args.model or MODELS
    started = time.time()
    if args.address:
        scores, _ = asyncio.run(evaluate(args.address, models))
    else:
        with tempfile.TemporaryDirectory() as run_dir, LocalMesh(run_dir=Path(run_dir)) as mesh:
            scores, _ = asyncio.run(evaluate(mesh.address, models))
    payload = scorecard_json(
        scores,
        benchmark="codegen_eval",
        date=time.strftime("%Y-%m-%d", time.gmtime(started)),
        machine=machine() + ", CPU only; mesh, sandbox and replay server share the cores",
        llm_endpoint=(
            "replay server (tests/codegen/replay_server.py) answering with the hand-written "
            "recordings of tests/codegen/replays/eval/: not the real models"
        ),
    )
    table = markdown_table(scores)
    path = write_results("codegen_eval", payload, table)
    write_chart(scores, RESULTS / "codegen_eval.png")
    print(table)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
