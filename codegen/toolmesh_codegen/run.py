"""The pipeline: question → prompt from the live registry → LLM → validator (with a
bounded repair loop) → parallelizer; and program → validator → sandbox.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import toolmesh
from toolmesh import FunctionInfo
from toolmesh_codegen._errors import LLMError, Problem, RepairFailed
from toolmesh_codegen.llm import LLMClient, Usage
from toolmesh_codegen.parallelize import Plan, plan
from toolmesh_codegen.prompt import Message, build_messages, extract_program, repair_message
from toolmesh_codegen.sandbox import RunResult, Sandbox
from toolmesh_codegen.validate import check, find_problems

__all__ = ["Attempt", "Generation", "generate", "run"]

DEFAULT_MAX_REPAIRS = 2


@dataclass(frozen=True, slots=True)
class Attempt:
    """One answer of the LLM and what the validator said about it."""

    source: str
    problems: tuple[Problem, ...]


@dataclass(frozen=True, slots=True)
class Generation:
    """A question's programs: the LLM's serial one and its parallel rewrite."""

    question: str
    serial: str
    parallel: str
    plan: Plan
    model: str
    usage: Usage
    attempts: tuple[Attempt, ...] = field(default=())
    messages: tuple[Message, ...] = field(default=())
    """The conversation, ending with the answer that holds ``serial``."""

    @property
    def repairs(self) -> int:
        """Answers the validator sent back before this one."""
        return max(len(self.attempts) - 1, 0)


async def _registry(address: str | None) -> list[FunctionInfo]:
    async with toolmesh.Client(address) as client:
        functions: list[FunctionInfo] = await client.functions()
    return functions


async def generate(
    question: str,
    *,
    functions: Sequence[FunctionInfo] | None = None,
    llm: LLMClient | None = None,
    address: str | None = None,
    max_repairs: int = DEFAULT_MAX_REPAIRS,
    conversation: Sequence[Message] | None = None,
) -> Generation:
    """Ask the LLM for a serial program, repair it until it validates, parallelize it.

    Args:
        question: What to answer about the input image.
        functions: The registry; default: fetched from the gateway at ``address``.
        llm: The LLM client; default: one configured from the environment.
        address: Gateway ``host:port`` (default ``TOOLMESH_ADDRESS``).
        max_repairs: How many times invalid programs are sent back with their problems.
        conversation: Messages to continue (a re-plan sends an earlier conversation
            plus the run-time error); default: a new conversation about ``question``.

    Raises:
        RepairFailed: the last attempt still had problems.
        LLMError: the endpoint failed or answered without a program every time.
    """
    registry = list(functions) if functions is not None else await _registry(address)
    client = llm or LLMClient()
    try:
        messages = list(conversation or build_messages(question, registry))
        usage = Usage()
        attempts: list[Attempt] = []
        model = client.settings.model
        source = ""
        problems: list[Problem] = []
        for _ in range(max_repairs + 1):
            completion = await client.complete(messages)
            usage += completion.usage
            model = completion.model
            messages = [*messages, {"role": "assistant", "content": completion.text}]
            try:
                source = extract_program(completion.text)
            except LLMError as exc:
                source, problems = "", [Problem(1, 0, str(exc))]
            else:
                problems = find_problems(source, registry, serial=True)
            attempts.append(Attempt(source, tuple(problems)))
            if not problems:
                parallel = plan(source)
                return Generation(
                    question=question,
                    serial=source,
                    parallel=parallel.source,
                    plan=parallel,
                    model=model,
                    usage=usage,
                    attempts=tuple(attempts),
                    messages=tuple(messages),
                )
            messages.append(repair_message(problems))
        raise RepairFailed(problems, len(attempts), source)
    finally:
        if llm is None:
            await client.aclose()


async def run(source: str, /, **inputs: Any) -> RunResult:
    """Validate ``source`` against the live registry and run it in a sandbox.

    The gateway is ``TOOLMESH_ADDRESS``; limits come from ``TOOLMESH_SANDBOX_*``. For
    other settings, or many runs on one sandbox, use :class:`Sandbox` directly.

    Raises:
        ValidationError: the program breaks the contract or misuses a function.
        TypeError: ``inputs`` do not match ``solve``'s parameters.
        SandboxError: the run was refused, killed, or the program raised.
    """
    program = check(source, await _registry(None), serial=False)
    program.check_inputs(inputs)
    async with Sandbox() as sandbox:
        return await sandbox.run(source, **inputs)
