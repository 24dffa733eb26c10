"""The scorecard: per model, how often it wrote a valid program, how often the answer
was right, what repairs and re-plans it needed, what it cost in tokens, dollars and
time, and how much the parallel rewrite of its programs saved. As JSON (the results
file) and as a Markdown table (the README's).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from toolmesh_codegen.evaluation.prices import TokenPrice, cost
from toolmesh_codegen.evaluation.runner import Outcome, QuestionResult
from toolmesh_codegen.llm import Usage

__all__ = ["ModelScore", "markdown_table", "scorecard_json"]


@dataclass(frozen=True, slots=True)
class ModelScore:
    """One model's totals over the question set."""

    model: str
    results: tuple[QuestionResult, ...]
    cost_usd: float | None

    @classmethod
    def of(
        cls, model: str, results: Sequence[QuestionResult], prices: dict[str, TokenPrice]
    ) -> ModelScore:
        usage = Usage(
            sum(r.prompt_tokens for r in results), sum(r.completion_tokens for r in results)
        )
        return cls(model, tuple(results), cost(usage, model, prices))

    @property
    def questions(self) -> int:
        return len(self.results)

    def _share(self, count: int) -> float:
        return count / self.questions if self.questions else 0.0

    @property
    def accuracy(self) -> float:
        return self._share(sum(r.correct for r in self.results))

    @property
    def valid_rate(self) -> float:
        return self._share(sum(r.valid for r in self.results))

    @property
    def prompt_tokens(self) -> int:
        return sum(r.prompt_tokens for r in self.results)

    @property
    def completion_tokens(self) -> int:
        return sum(r.completion_tokens for r in self.results)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def timed(self) -> list[QuestionResult]:
        """Questions whose serial and parallel programs both ran."""
        return [r for r in self.results if r.serial_s is not None and r.parallel_s is not None]

    @property
    def serial_s(self) -> float:
        return sum(r.serial_s or 0.0 for r in self.timed)

    @property
    def parallel_s(self) -> float:
        return sum(r.parallel_s or 0.0 for r in self.timed)

    @property
    def speedup(self) -> float | None:
        """Serial over parallel execution time, summed over the questions both ran."""
        return self.serial_s / self.parallel_s if self.parallel_s > 0 else None

    def to_json(self) -> dict[str, Any]:
        outcomes = Counter(r.outcome.value for r in self.results)
        by_category: dict[str, list[QuestionResult]] = {}
        for r in self.results:
            by_category.setdefault(r.category, []).append(r)
        llm_s = sum(r.llm_s for r in self.results)
        return {
            "questions": self.questions,
            "accuracy": self.accuracy,
            "valid_rate": self.valid_rate,
            "outcomes": {o.value: outcomes.get(o.value, 0) for o in Outcome},
            "repair_rounds": sum(r.repairs for r in self.results),
            "replan_rounds": sum(r.replans for r in self.results),
            "runtime_errors": sum(r.runtime_errors for r in self.results),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "tokens": self.tokens,
            "cost": self.cost_usd,
            "llm_latency_s": llm_s,
            "llm_latency_mean_s": llm_s / self.questions if self.questions else 0.0,
            "timed_questions": len(self.timed),
            "serial_s": self.serial_s,
            "parallel_s": self.parallel_s,
            "speedup": self.speedup,
            "serial_rounds": sum(r.serial_rounds or 0 for r in self.timed),
            "parallel_rounds": sum(r.parallel_rounds or 0 for r in self.timed),
            "accuracy_by_category": {
                c: sum(r.correct for r in rs) / len(rs) for c, rs in sorted(by_category.items())
            },
            "results": [r.to_json() for r in self.results],
        }


def scorecard_json(scores: Sequence[ModelScore], **about: Any) -> dict[str, Any]:
    """The results document: ``about`` (date, machine, endpoint…), the number of
    questions, and each model's scorecard by name."""
    return {
        **about,
        "questions": max((s.questions for s in scores), default=0),
        "models": {s.model: s.to_json() for s in scores},
    }


def _money(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"${value:.4f}" if value < 1 else f"${value:.2f}"


def markdown_table(scores: Sequence[ModelScore]) -> str:
    """One row per model."""
    lines = [
        "| model | accuracy | valid programs | repair rounds | re-plans | run-time errors "
        "| tokens (prompt + completion) | cost | LLM latency (mean) "
        "| execution serial → parallel | speedup |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in scores:
        data = s.to_json()
        right = sum(r.correct for r in s.results)
        valid = sum(r.valid for r in s.results)
        speedup = "n/a" if s.speedup is None else f"**{s.speedup:.2f}×**"
        lines.append(
            f"| {s.model} | **{s.accuracy:.0%}** ({right}/{s.questions}) "
            f"| {s.valid_rate:.0%} ({valid}/{s.questions}) "
            f"| {data['repair_rounds']} | {data['replan_rounds']} | {data['runtime_errors']} "
            f"| {s.tokens:,} ({s.prompt_tokens:,} + {s.completion_tokens:,}) "
            f"| {_money(s.cost_usd)} | {data['llm_latency_mean_s'] * 1000:.0f} ms "
            f"| {s.serial_s * 1000:.0f} → {s.parallel_s * 1000:.0f} ms "
            f"({data['timed_questions']} questions) | {speedup} |"
        )
    return "\n".join(lines)
