"""The batch runner's sandboxed solver: ``toolmesh run`` without ``--trusted``.

``toolmesh.batch.run_batch`` takes a solver factory (``BatchConfig.solver``);
:func:`sandboxed_solver` is the one that runs each task's ``solve(image)`` in a
jailed single-use process instead of loading the file into the caller. The
program's mesh calls are performed in this process by ``toolmesh.call``, i.e. by
the batch runner's default client, so they are recorded, timed and retried like
any in-process call; a transient failure (``Unavailable``, ``DeadlineExceeded``)
reaches the runner as that same exception, so the task is left for ``--resume``.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import toolmesh
from toolmesh_codegen._errors import ProgramError
from toolmesh_codegen.sandbox import DEFAULT_POOL, Limits, Sandbox
from toolmesh_codegen.validate import check

__all__ = ["SandboxedSolver", "sandboxed_solver"]

#: Mesh errors raised during the current task's run (per task: runs are concurrent).
_failures: contextvars.ContextVar[list[toolmesh.ToolmeshError] | None] = contextvars.ContextVar(
    "toolmesh_codegen_batch_failures", default=None
)


async def _call(function: str, /, **arguments: Any) -> Any:
    try:
        return await toolmesh.call(function, **arguments)
    except toolmesh.ToolmeshError as exc:
        failures = _failures.get()
        if failures is not None:
            failures.append(exc)
        raise


class SandboxedSolver:
    """``async (image) -> result`` that runs one program in the sandbox per call.

    Concurrent calls run in separate processes. Close it with :meth:`aclose` (the
    batch runner does).
    """

    def __init__(self, source: str, *, limits: Limits | None = None, pool: int) -> None:
        self.source = source
        self.sandbox = Sandbox(limits=limits, call=_call, pool=pool)

    async def __call__(self, image: Any) -> Any:
        """``solve(image)`` in a fresh jailed process; its value.

        Raises:
            ToolmeshError: the mesh error that ended the program, as the mesh raised it.
            SandboxError: refused, killed, or the program raised (``ProgramError``).
        """
        failures: list[toolmesh.ToolmeshError] = []
        token = _failures.set(failures)
        try:
            return (await self.sandbox.run(self.source, image=image)).value
        except ProgramError as exc:
            for failure in failures:
                if (type(failure).__name__, str(failure)[: len(exc.message)]) == exc.signature:
                    raise failure from exc
            raise
        finally:
            _failures.reset(token)

    async def aclose(self) -> None:
        """Stop the sandbox's processes."""
        await self.sandbox.aclose()


def sandboxed_solver(
    program: Path,
    *,
    functions: Iterable[toolmesh.FunctionInfo] | None = None,
    limits: Limits | None = None,
    pool: int = DEFAULT_POOL,
) -> SandboxedSolver:
    """A solver for ``program`` that runs it sandboxed; a ``SolverFactory``.

    The program is checked now, as ``toolmesh.codegen.run`` checks it: against the
    contract, and, given the registry (``functions``), every mesh call against its
    function's schema. The child checks the structure again before every run.
    Isolation is checked on the first run.

    Raises:
        ValidationError: the program breaks the contract.
        OSError: the file cannot be read.
    """
    source = program.read_text()
    check(source, functions, serial=False)
    return SandboxedSolver(source, limits=limits, pool=pool)
