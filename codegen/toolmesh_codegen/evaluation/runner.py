"""Running the question set against one model: each question is answered the way
``toolmesh ask`` answers it (generate, repair, run serial then parallel in the sandbox,
re-plan after a failed run), and everything it took is recorded, whatever the outcome.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import toolmesh
from toolmesh import FunctionInfo
from toolmesh_codegen._errors import (
    IsolationUnavailable,
    LLMError,
    RepairFailed,
    ReplanFailed,
    SandboxError,
)
from toolmesh_codegen.evaluation.checks import matches
from toolmesh_codegen.evaluation.questions import Question
from toolmesh_codegen.llm import Completion, LLMClient, LLMSettings, Usage
from toolmesh_codegen.prompt import Message
from toolmesh_codegen.replan import Progress, Solution, answer, blames_the_program
from toolmesh_codegen.sandbox import Sandbox

__all__ = [
    "EvalSettings",
    "MeteredLLM",
    "Outcome",
    "QuestionResult",
    "evaluate_model",
    "expected_answers",
]


class Outcome(enum.Enum):
    """How a question ended for a model."""

    CORRECT = "correct"
    WRONG = "wrong"
    """A program ran and returned a different answer."""
    INVALID = "invalid"
    """No program passed the validator within the repair rounds."""
    FAILED = "failed"
    """Valid programs failed when they ran, past the re-plans (or the rewrite failed)."""
    ERROR = "error"
    """The LLM endpoint or the mesh failed; nothing was judged."""


class MeteredLLM(LLMClient):
    """An :class:`LLMClient` that adds up tokens and time over every answered request,
    so a question that ends in an error still counts what it spent."""

    def __init__(self, settings: LLMSettings) -> None:
        super().__init__(settings)
        self.usage = Usage()
        self.latency_s = 0.0

    async def complete(self, messages: Sequence[Message]) -> Completion:
        started = time.perf_counter()
        try:
            completion = await super().complete(messages)
        finally:
            self.latency_s += time.perf_counter() - started
        self.usage += completion.usage
        return completion


@dataclass(frozen=True, slots=True)
class QuestionResult:
    """One question answered (or not) by one model, and what it took."""

    id: str
    category: str
    outcome: Outcome
    answer: Any
    expected: Any
    valid: bool
    repairs: int
    replans: int
    runtime_errors: int
    prompt_tokens: int
    completion_tokens: int
    llm_s: float
    serial_s: float | None = None
    parallel_s: float | None = None
    serial_rounds: int | None = None
    parallel_rounds: int | None = None
    error: str | None = None

    @property
    def correct(self) -> bool:
        return self.outcome is Outcome.CORRECT

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "category": self.category,
            "outcome": self.outcome.value,
            "answer": _plain(self.answer),
            "expected": _plain(self.expected),
            "valid": self.valid,
            "repairs": self.repairs,
            "replans": self.replans,
            "runtime_errors": self.runtime_errors,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "llm_s": self.llm_s,
            "serial_s": self.serial_s,
            "parallel_s": self.parallel_s,
            "serial_rounds": self.serial_rounds,
            "parallel_rounds": self.parallel_rounds,
            "error": self.error,
        }


def _plain(value: Any) -> Any:
    """JSON-able data: images and other objects as their ``repr``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return repr(value)


async def expected_answers(questions: Sequence[Question], sandbox: Sandbox) -> dict[str, Any]:
    """Each question's expected answer: its own, or its reference program's on this mesh.

    Raises:
        SandboxError: a reference program failed (the question set is wrong).
    """
    expected: dict[str, Any] = {}
    for question in questions:
        if question.has_answer:
            expected[question.id] = question.answer
        else:
            assert question.reference is not None
            run = await sandbox.run(question.reference, image=question.image_bytes())
            expected[question.id] = run.value
    return expected


@dataclass(frozen=True, slots=True)
class EvalSettings:
    """How hard each question is tried."""

    max_repairs: int = 2
    max_replans: int = 2


async def evaluate_model(
    settings: LLMSettings,
    questions: Sequence[Question],
    expected: Mapping[str, Any],
    *,
    functions: Sequence[FunctionInfo],
    sandbox: Sandbox,
    options: EvalSettings | None = None,
    on_result: Callable[[QuestionResult], None] | None = None,
) -> list[QuestionResult]:
    """Every question asked of the model ``settings`` names, one after another.

    Raises:
        IsolationUnavailable: programs cannot be run here at all.
    """
    options = options or EvalSettings()
    results: list[QuestionResult] = []
    llm = MeteredLLM(settings)
    async with llm:
        for question in questions:
            result = await _one(question, expected[question.id], llm, functions, sandbox, options)
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results


async def _one(
    question: Question,
    expected: Any,
    llm: MeteredLLM,
    functions: Sequence[FunctionInfo],
    sandbox: Sandbox,
    options: EvalSettings,
) -> QuestionResult:
    usage_before, latency_before = llm.usage, llm.latency_s
    progress = Progress()
    solution: Solution | None = None
    outcome: Outcome
    error: str | None = None
    extra_repairs = extra_runtime = 0
    replans_not_sent = 0
    try:
        solution = await answer(
            question.question,
            functions=functions,
            llm=llm,
            sandbox=sandbox,
            inputs={"image": question.image_bytes()},
            max_repairs=options.max_repairs,
            max_replans=options.max_replans,
            expect=question.expect_type,
            progress=progress,
        )
    except IsolationUnavailable:
        raise
    except RepairFailed as exc:
        outcome = Outcome.FAILED if progress.generations else Outcome.INVALID
        extra_repairs = exc.attempts - 1
        error = str(exc).splitlines()[0]
    except ReplanFailed as exc:
        outcome, error, replans_not_sent = Outcome.FAILED, str(exc), 1
    except TypeError as exc:  # solve() takes other inputs than the picture
        outcome, error, extra_runtime = Outcome.FAILED, f"TypeError: {exc}", 1
    except SandboxError as exc:  # the parallel rewrite failed, or a run not the program's fault
        if blames_the_program(exc):
            outcome, error, extra_runtime = Outcome.FAILED, f"{type(exc).__name__}: {exc}", 1
        else:
            outcome, error = Outcome.ERROR, f"{type(exc).__name__}: {exc}"
    except (LLMError, toolmesh.ToolmeshError) as exc:
        outcome, error = Outcome.ERROR, f"{type(exc).__name__}: {exc}"
    value: Any = None
    if solution is not None:
        value = solution.value
        right = matches(value, expected, question.tolerance)
        outcome = Outcome.CORRECT if right else Outcome.WRONG
        if solution.parallel is not None and solution.parallel.value != solution.serial.value:
            outcome, error = Outcome.FAILED, "the serial and parallel programs disagree"
            extra_runtime = 1
    usage = _minus(llm.usage, usage_before)
    serial = solution.serial if solution is not None else None
    parallel = solution.parallel if solution is not None else None
    return QuestionResult(
        id=question.id,
        category=question.category,
        outcome=outcome,
        answer=value,
        expected=expected,
        valid=bool(progress.generations),
        repairs=sum(g.repairs for g in progress.generations) + extra_repairs,
        replans=len(progress.failures) - replans_not_sent,
        runtime_errors=len(progress.failures) + extra_runtime,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        llm_s=llm.latency_s - latency_before,
        serial_s=serial.elapsed_s if serial is not None else None,
        parallel_s=parallel.elapsed_s if parallel is not None else None,
        serial_rounds=serial.rounds if serial is not None else None,
        parallel_rounds=parallel.rounds if parallel is not None else None,
        error=error,
    )


def _minus(after: Usage, before: Usage) -> Usage:
    return Usage(
        after.prompt_tokens - before.prompt_tokens,
        after.completion_tokens - before.completion_tokens,
        after.requests - before.requests,
    )
