"""Errors of the codegen agent.

The tree, so callers can catch as broadly or as narrowly as they need::

    CodegenError
    ├── ValidationError        the program breaks the contract (line-numbered problems)
    ├── RepairFailed           the LLM kept writing invalid programs (bounded repair rounds)
    ├── ReplanFailed           its valid programs kept failing at run time (bounded re-plans)
    ├── LLMError               the endpoint failed, timed out or answered without a program
    └── SandboxError           the sandboxed run did not produce a value
        ├── SandboxViolation   the program tried something the sandbox forbids
        ├── SandboxTimeout     the program ran past its wall-clock limit and was killed
        ├── SandboxMemoryError the program ran out of its memory allowance
        ├── SandboxCrashed     the sandbox process died or sent a malformed message
        ├── IsolationUnavailable  this machine cannot jail programs (nothing ran)
        └── ProgramError       the program itself raised (type, message and line kept)
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CodegenError",
    "IsolationUnavailable",
    "LLMError",
    "Problem",
    "ProgramError",
    "RepairFailed",
    "ReplanFailed",
    "SandboxCrashed",
    "SandboxError",
    "SandboxMemoryError",
    "SandboxTimeout",
    "SandboxViolation",
    "ValidationError",
]


class CodegenError(Exception):
    """Root of every error the codegen agent raises."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a program, where it is, in words an LLM can act on."""

    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class ValidationError(CodegenError):
    """The program breaks the contract; ``problems`` lists every finding by line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.line, p.column))
        lines = "\n".join(f"  {p}" for p in self.problems)
        count = len(self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in the program:\n{lines}")


class RepairFailed(ValidationError):
    """The LLM's last attempt still had problems after the allowed repair rounds."""

    def __init__(self, problems: list[Problem], attempts: int, source: str) -> None:
        super().__init__(problems)
        self.attempts = attempts
        self.source = source
        self.args = (f"no valid program after {attempts} attempts; last one had:\n{self.args[0]}",)


class ReplanFailed(CodegenError):
    """Valid programs kept failing when they ran, after the allowed re-plans.

    ``failures`` holds one line per failed run, oldest first; ``source`` the last program.
    """

    def __init__(self, failures: list[str], source: str) -> None:
        self.failures = failures
        self.source = source
        runs = len(failures)
        super().__init__(
            f"the program failed when it ran, {runs} time{'s' if runs != 1 else ''}; "
            f"last: {failures[-1] if failures else 'unknown'}"
        )


class LLMError(CodegenError):
    """The LLM endpoint failed, timed out, or answered without a program."""


class SandboxError(CodegenError):
    """The sandboxed run did not produce a value."""


class SandboxViolation(SandboxError):
    """The program tried something generated programs may not do."""


class SandboxTimeout(SandboxError):
    """The program ran past its wall-clock limit; its process was killed."""


class SandboxMemoryError(SandboxError):
    """The program needed more memory than its allowance."""


class SandboxCrashed(SandboxError):
    """The sandbox process exited without answering."""


class IsolationUnavailable(SandboxError):
    """This machine cannot isolate untrusted programs (no user namespaces, no seccomp,
    no bubblewrap); nothing ran, and nothing is run with weaker isolation instead."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"cannot run untrusted programs here: {reason}. They are refused rather than "
            "run without isolation; for your own code, `toolmesh run --trusted` runs it "
            "in-process"
        )
        self.reason = reason


class ProgramError(SandboxError):
    """The program raised: ``type_name``, ``message`` and ``line`` (in the program) are kept.

    Two runs raised "the same exception" when ``(type_name, message)`` are equal.
    """

    def __init__(self, type_name: str, message: str, line: int | None) -> None:
        where = f" (line {line})" if line else ""
        super().__init__(f"{type_name}: {message}{where}")
        self.type_name = type_name
        self.message = message
        self.line = line

    @property
    def signature(self) -> tuple[str, str]:
        """What must match for two runs to have raised the same exception."""
        return self.type_name, self.message
