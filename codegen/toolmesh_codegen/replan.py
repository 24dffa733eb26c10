"""Re-planning: a program that passed the validator can still fail when it runs (a
``KeyError`` on a detection, a call the gateway refuses, an answer of the wrong type).
The error, with its line in the LLM's own program, goes back to the LLM for a bounded
number of new programs, as LLMCompiler's re-planner does after a failed step.

The serial program runs first: its line numbers are the LLM's, and its time is the
baseline the parallel rewrite is measured against. Failures that are not the
program's fault (the mesh unavailable, a deadline, a crashed sandbox, no isolation)
are raised as they are: a new program would not help.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from toolmesh import FunctionInfo
from toolmesh_codegen._errors import (
    ProgramError,
    ReplanFailed,
    SandboxMemoryError,
    SandboxTimeout,
    SandboxViolation,
)
from toolmesh_codegen.llm import LLMClient, Usage
from toolmesh_codegen.prompt import replan_message
from toolmesh_codegen.run import DEFAULT_MAX_REPAIRS, Generation, generate
from toolmesh_codegen.sandbox import RunResult, Sandbox
from toolmesh_codegen.validate import check

__all__ = [
    "DEFAULT_MAX_REPLANS",
    "FailureKind",
    "Progress",
    "RunFailure",
    "Solution",
    "answer",
    "blames_the_program",
    "result_type_problem",
]

DEFAULT_MAX_REPLANS = 2

#: Exceptions a program sees when the gateway refuses what it asked for (its fault).
_REFUSALS = frozenset(
    {"InvalidArgument", "FunctionNotFound", "FailedPrecondition", "ArgumentError"}
)
#: Exceptions from the mesh that a different program would not avoid.
_NOT_THE_PROGRAM = frozenset(
    {
        "Unavailable",
        "DeadlineExceeded",
        "ResourceExhausted",
        "AuthError",
        "Unauthenticated",
        "PermissionDenied",
        "Cancelled",
        "ClientClosed",
        "RemoteError",
    }
)


class FailureKind(enum.Enum):
    """Why a validated program's run was sent back."""

    EXCEPTION = "exception"
    REFUSED_CALL = "refused call"
    WRONG_RESULT = "wrong result type"
    LIMIT = "sandbox limit"


@dataclass(frozen=True, slots=True)
class RunFailure:
    """One failed run of a validated program: what went back to the LLM."""

    kind: FailureKind
    message: str
    line: int | None
    source: str

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line else ""
        return f"{self.kind.value}: {self.message}{where}"


@dataclass
class Progress:
    """What :func:`answer` has done so far, filled in as it goes, so a caller that
    catches its error still knows how many programs and failed runs it took."""

    generations: list[Generation] = field(default_factory=list)
    failures: list[RunFailure] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Solution:
    """A question answered: the program that ran, its runs, and what it took to get there.

    ``generations`` holds every program the LLM was asked for, the last one is
    ``generation``; ``failures`` the runs sent back (one per re-plan).
    """

    generation: Generation
    serial: RunResult
    parallel: RunResult | None
    generations: tuple[Generation, ...]
    failures: tuple[RunFailure, ...]

    @property
    def value(self) -> Any:
        """The answer (the parallel program's, when it ran)."""
        return (self.parallel or self.serial).value

    @property
    def replans(self) -> int:
        return len(self.failures)

    @property
    def repairs(self) -> int:
        """Invalid answers sent back to the LLM, over every generation."""
        return sum(g.repairs for g in self.generations)

    @property
    def usage(self) -> Usage:
        total = Usage()
        for generation in self.generations:
            total += generation.usage
        return total


def result_type_problem(value: Any, expect: type | tuple[type, ...] | None) -> str | None:
    """Why ``value`` is not an answer of type ``expect`` (``None`` when it is).

    ``bool`` is not accepted for a number: a yes/no is not a count.
    """
    if expect is None:
        return None
    wanted = expect if isinstance(expect, tuple) else (expect,)
    numeric = any(t in (int, float) for t in wanted)
    if isinstance(value, wanted) and not (
        isinstance(value, bool) and numeric and bool not in wanted
    ):
        return None
    names = " or ".join(t.__name__ for t in wanted)
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return f"solve() returned {type(value).__name__} {shown}, but the answer must be {names}"


def blames_the_program(exc: Exception) -> bool:
    """Whether a failed run is the program's doing (a new program might avoid it), as
    opposed to the mesh's or the sandbox's (unavailable, a deadline, a crash)."""
    return _failure(exc, "") is not None


def _failure(exc: Exception, source: str) -> RunFailure | None:
    """The run failure to send back, or ``None`` when it is not the program's fault."""
    if isinstance(exc, ProgramError):
        if exc.type_name in _NOT_THE_PROGRAM:
            return None
        kind = FailureKind.REFUSED_CALL if exc.type_name in _REFUSALS else FailureKind.EXCEPTION
        return RunFailure(kind, f"{exc.type_name}: {exc.message}", exc.line, source)
    if isinstance(exc, (SandboxViolation, SandboxTimeout, SandboxMemoryError)):
        return RunFailure(FailureKind.LIMIT, str(exc), None, source)
    return None


async def answer(
    question: str,
    *,
    functions: Sequence[FunctionInfo],
    llm: LLMClient,
    sandbox: Sandbox,
    inputs: Mapping[str, Any],
    max_repairs: int = DEFAULT_MAX_REPAIRS,
    max_replans: int = DEFAULT_MAX_REPLANS,
    expect: type | tuple[type, ...] | None = None,
    parallel: bool = True,
    progress: Progress | None = None,
) -> Solution:
    """Generate a program for ``question``, run it, and re-plan while its runs fail.

    Args:
        question: What to answer about the inputs.
        functions: The registry the programs are checked against.
        llm: The LLM client.
        sandbox: Where the programs run.
        inputs: ``solve``'s arguments (``image=...``).
        max_repairs: Invalid programs sent back per generation (see ``generate``).
        max_replans: Failed runs sent back; each asks the LLM for a new program.
        expect: The type the answer must have; another type is a failed run.
        parallel: Also run the parallel rewrite once the serial program succeeded.
        progress: Filled in with every generation and failed run as they happen.

    Raises:
        ReplanFailed: the last allowed program still failed when it ran.
        RepairFailed: a generation never validated.
        SandboxError: a failure that is not the program's (crash, no isolation), or the
            parallel rewrite failed where the serial program did not.
        TypeError: ``inputs`` do not match the program's ``solve`` parameters.
        ToolmeshError: the mesh failed (unavailable, deadline).
        LLMError: the endpoint failed.
    """
    progress = progress if progress is not None else Progress()
    generations, failures = progress.generations, progress.failures
    conversation = None
    while True:
        generation = await generate(
            question,
            functions=functions,
            llm=llm,
            max_repairs=max_repairs,
            conversation=conversation,
        )
        generations.append(generation)
        check(generation.serial, functions, serial=True).check_inputs(inputs)
        failure: RunFailure | None
        try:
            serial = await sandbox.run(generation.serial, **inputs)
        except (ProgramError, SandboxViolation, SandboxTimeout, SandboxMemoryError) as exc:
            failure = _failure(exc, generation.serial)
            if failure is None:
                raise
        else:
            problem = result_type_problem(serial.value, expect)
            if problem is None:
                ran = await sandbox.run(generation.parallel, **inputs) if parallel else None
                return Solution(generation, serial, ran, tuple(generations), tuple(failures))
            failure = RunFailure(FailureKind.WRONG_RESULT, problem, None, generation.serial)
        failures.append(failure)
        if len(failures) > max_replans:
            raise ReplanFailed([str(f) for f in failures], generation.serial)
        conversation = [
            *generation.messages,
            replan_message(failure.kind.value, failure.message, failure.line, failure.source),
        ]
