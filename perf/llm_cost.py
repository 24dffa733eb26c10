"""LLM operating cost: tokens per question × each model's price, the paper's self-hosted vs API comparison.

    .venv/bin/python -m perf.llm_cost                       # 10,000 questions
    .venv/bin/python -m perf.llm_cost --questions 1000

The DiCE-C paper reports an operating cost of $863.33 for a self-hosted model
against $8,641.86 through the OpenAI API (1/10) without giving its token counts.
Here the tokens per question are this project's own: the prompt the codegen agent
sends for the paper's query (``toolmesh_codegen.prompt.build_messages`` over the
full registry: every Function's documentation and schemas plus the worked
examples), and, as the completion, the accident program shipped with the SDK
(``toolmesh/data/programs/accident_report.py``, the program such a question
should produce). Tokens are estimated at 4 characters a token (no tokenizer is
installed here; real counts differ by model, typically by ±20 %), and the
prices are the ``llm_models`` rows of ``toolmesh/batch/prices.yaml``, the same
computation ``toolmesh report --questions N --prompt-tokens P
--completion-tokens C`` prints. One repair round (a second prompt with the
first answer) is the common case the ``--repair-rate`` option adds.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import toolmesh
from perf._harness import RESULTS, write_results
from toolmesh.batch import llm_costs, load_llm_prices
from toolmesh.data import ACCIDENT_REPORT
from toolmesh_codegen.prompt import build_messages
from toolmesh_gateway.registry import load_registry
from toolmesh_models.paths import FUNCTIONS_DIR

QUESTION = (
    "In the accident scene, report the color and model of all the cars involved in the "
    "accident and check if the cars are damaged or overturned."
)
CHARS_PER_TOKEN = 4.0
PAPER = {"self_hosted_usd": 863.329, "api_usd": 8641.855}


def token_counts(repair_rate: float) -> dict[str, float]:
    """Estimated prompt and completion tokens of one question (see the module doc)."""
    functions = [
        toolmesh.FunctionInfo.from_proto(f.to_proto()) for f in load_registry(FUNCTIONS_DIR)
    ]
    messages = build_messages(QUESTION, functions)
    prompt_chars = sum(len(m["content"]) for m in messages)
    completion_chars = len(ACCIDENT_REPORT.read_text())
    prompt = prompt_chars / CHARS_PER_TOKEN
    completion = completion_chars / CHARS_PER_TOKEN
    return {
        "prompt_chars": prompt_chars,
        "completion_chars": completion_chars,
        "functions_in_prompt": len(functions),
        # a repair round re-sends the prompt with the first answer and gets a second one
        "prompt_tokens": prompt + repair_rate * (prompt + completion),
        "completion_tokens": completion * (1 + repair_rate),
    }


def table(payload: dict[str, Any]) -> str:
    tokens = payload["tokens"]
    lines = [
        f"| LLM ({payload['questions']:,} questions; {tokens['prompt_tokens']:.0f} prompt + "
        f"{tokens['completion_tokens']:.0f} completion tokens each, est.) | kind | per question | total | vs API (gpt-4o) |",
        "|---|---|---:|---:|---:|",
    ]
    api = next(m for m in payload["models"] if m["model"] == "gpt-4o")
    for m in payload["models"]:
        lines.append(
            f"| {m['model']} | {'self-hosted' if m['self_hosted'] else 'API'} | "
            f"${m['usd_per_question']:.5f} | ${m['usd']:,.2f} | {m['usd'] / api['usd']:.2f} |"
        )
    ratio = PAPER["self_hosted_usd"] / PAPER["api_usd"]
    lines += [
        "",
        "| | self-hosted | API | self-hosted / API |",
        "|---|---:|---:|---:|",
        f"| paper (its workload, token counts not given) | ${PAPER['self_hosted_usd']:,.2f} | "
        f"${PAPER['api_usd']:,.2f} | {ratio:.2f} |",
        f"| here (self-hosted-a100 vs gpt-4o, {payload['questions']:,} questions) | "
        f"${payload['self_hosted_usd']:,.2f} | ${api['usd']:,.2f} | "
        f"{payload['self_hosted_usd'] / api['usd']:.2f} |",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m perf.llm_cost",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--questions", type=int, default=10_000)
    parser.add_argument(
        "--repair-rate", type=float, default=0.0, help="repair rounds per question (0..)"
    )
    parser.add_argument("--prices", type=Path, default=None, help="price table (default bundled)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    tokens = token_counts(args.repair_rate)
    costs = llm_costs(
        load_llm_prices(args.prices),
        prompt_tokens=tokens["prompt_tokens"],
        completion_tokens=tokens["completion_tokens"],
        questions=args.questions,
    )
    hosted = next(c for c in costs if c.model == "self-hosted-a100")
    payload = {
        "benchmark": "llm_cost",
        "date": time.strftime("%Y-%m-%d"),
        "question": QUESTION,
        "questions": args.questions,
        "repair_rate": args.repair_rate,
        "chars_per_token": CHARS_PER_TOKEN,
        "tokens": tokens,
        "models": [vars(c) | {"usd": c.usd} for c in costs],
        "self_hosted_usd": hosted.usd,
        "paper": PAPER,
    }
    markdown = table(payload)
    if args.results == RESULTS:
        write_results("llm_cost", payload, markdown)
    else:
        args.results.mkdir(parents=True, exist_ok=True)
        (args.results / "llm_cost.json").write_text(json.dumps(payload, indent=2) + "\n")
        (args.results / "llm_cost.md").write_text(markdown + "\n")
    print(markdown)


if __name__ == "__main__":
    main()
