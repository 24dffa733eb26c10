"""Runs one program in this process, in a namespace that holds only what the policy
allows, and measures it: calls made, rounds (the longest chain of calls that waited for
one another) and wall time of ``solve``.

The sandbox child runs programs with this module; tests run it directly with a fake
``call`` (the way httpx tests use ``MockTransport``), which is fine only for programs
the test itself wrote.
"""

from __future__ import annotations

import asyncio
import builtins
import math
import time
from collections.abc import Awaitable, Callable, Generator
from contextvars import ContextVar
from dataclasses import dataclass
from types import SimpleNamespace, TracebackType
from typing import Any, NoReturn

from toolmesh_codegen._errors import ProgramError, SandboxMemoryError, SandboxViolation
from toolmesh_codegen._policy import MODULE_ATTRIBUTES, REFUSED_BUILTINS, SAFE_BUILTINS
from toolmesh_codegen.validate import ENTRY, check

__all__ = ["CallFunction", "Outcome", "Tracker", "execute", "program_namespace"]

#: ``async (function, **arguments) -> result``: how a program's calls reach the mesh.
CallFunction = Callable[..., Awaitable[Any]]

FILENAME = "<program>"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one run produced: the value, or the error, and the measurements."""

    value: Any
    error: SandboxViolation | SandboxMemoryError | ProgramError | None
    elapsed_s: float
    calls: int
    rounds: int
    stdout: str


class Tracker:
    """Counts calls and measures rounds.

    Each task carries the depth of the calls it has seen complete; a call started
    from that task is one deeper. ``asyncio.gather`` and tasks hand the depth of what
    they awaited back to the awaiting task. The deepest call is the number of rounds:
    the serial program's is its number of calls, a parallel program's is the length of
    the longest chain of calls that had to wait for one another.
    """

    def __init__(self) -> None:
        self._depth: ContextVar[int] = ContextVar(f"toolmesh_depth_{id(self)}", default=0)
        self.calls = 0
        self.rounds = 0

    def _observe(self, depth: int) -> None:
        if depth > self._depth.get():
            self._depth.set(depth)

    def wrap(self, call: CallFunction) -> Callable[..., Awaitable[Any]]:
        """``toolmesh.call`` for a program: a plain function that returns a coroutine, so
        the depth is taken when the program asks for the call, not when it first runs."""

        def tracked_call(function: str, /, **arguments: Any) -> Awaitable[Any]:
            depth = self._depth.get() + 1
            self.calls += 1
            self.rounds = max(self.rounds, depth)
            return self._complete(call(function, **arguments), depth)

        return tracked_call

    async def _complete(self, awaitable: Awaitable[Any], depth: int) -> Any:
        result = await awaitable
        self._observe(depth)
        return result

    async def _measured(self, awaitable: Awaitable[Any]) -> tuple[Any, int]:
        result = await awaitable
        return result, self._depth.get()

    async def gather(self, *awaitables: Awaitable[Any]) -> list[Any]:
        """``asyncio.gather`` that passes the depth of its children to the caller."""
        pairs = await asyncio.gather(*(self._measured(a) for a in awaitables))
        self._observe(max((depth for _, depth in pairs), default=0))
        return [result for result, _ in pairs]

    def ensure_future(self, awaitable: Awaitable[Any]) -> TaskHandle:
        """``asyncio.ensure_future`` whose result can only be awaited (no loop, no stack)."""
        return TaskHandle(asyncio.ensure_future(self._measured(awaitable)), self)


class TaskHandle:
    """A running task as a program sees it: something to await, nothing else."""

    __slots__ = ("_task", "_tracker")

    def __init__(self, task: asyncio.Future[tuple[Any, int]], tracker: Tracker) -> None:
        self._task = task
        self._tracker = tracker

    def __await__(self) -> Generator[Any, None, Any]:
        result, depth = yield from self._task.__await__()
        self._tracker._observe(depth)
        return result


class _Output:
    """``print`` for programs: text kept in memory up to a limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.size = 0
        self.truncated = False

    def print(self, *values: Any, sep: str | None = " ", end: str | None = "\n") -> None:
        text = (" " if sep is None else str(sep)).join(str(v) for v in values)
        text += "\n" if end is None else str(end)
        if self.size + len(text) > self.limit:
            text = text[: max(0, self.limit - self.size)]
            self.truncated = True
        self.parts.append(text)
        self.size += len(text)

    def text(self) -> str:
        return "".join(self.parts) + ("\n[output truncated]\n" if self.truncated else "")


def _refused(name: str, reason: str) -> Callable[..., NoReturn]:
    def refuse(*args: Any, **kwargs: Any) -> NoReturn:
        raise SandboxViolation(f"{name}() is not available: {reason}")

    refuse.__name__ = name
    return refuse


def program_namespace(
    call: CallFunction, tracker: Tracker, output: _Output | None = None
) -> dict[str, Any]:
    """Globals for a program: allowed builtins, and ``toolmesh``/``asyncio``/``math``
    as namespaces holding only the allowed attributes."""
    modules: dict[str, Any] = {
        "toolmesh": SimpleNamespace(call=tracker.wrap(call)),
        "asyncio": SimpleNamespace(
            gather=tracker.gather,
            ensure_future=tracker.ensure_future,
            create_task=tracker.ensure_future,
        ),
        "math": math,
    }
    assert set(modules) == set(MODULE_ATTRIBUTES)

    def importer(
        name: str,
        globals: Any = None,
        locals: Any = None,
        fromlist: Any = (),
        level: int = 0,
    ) -> Any:
        if level == 0 and not fromlist and name in modules:
            return modules[name]
        raise SandboxViolation(
            f"import of {name!r} is not allowed; available: {', '.join(sorted(modules))}"
        )

    allowed: dict[str, Any] = {
        name: getattr(builtins, name) for name in SAFE_BUILTINS if hasattr(builtins, name)
    }
    for name, reason in REFUSED_BUILTINS.items():
        allowed[name] = _refused(name, reason)
    allowed["__import__"] = importer
    allowed["print"] = (output or _Output(64 * 1024)).print
    return {"__builtins__": allowed, "__name__": "program", **modules}


async def execute(
    source: str,
    inputs: dict[str, Any],
    call: CallFunction,
    *,
    output_limit: int = 64 * 1024,
) -> Outcome:
    """Check ``source`` (structure), run its ``solve(**inputs)``, and measure it.

    Errors of the program come back in ``Outcome.error``; they are not raised.
    """
    tracker = Tracker()
    output = _Output(output_limit)
    try:
        check(source, None, serial=False)
    except Exception as exc:
        error = SandboxViolation(f"the program was refused:\n{exc}")
        return Outcome(None, error, 0.0, 0, 0, "")
    namespace = program_namespace(call, tracker, output)
    started = time.perf_counter()
    try:
        exec(compile(source, FILENAME, "exec"), namespace)
        solve = namespace[ENTRY]
        started = time.perf_counter()
        value = await solve(**inputs)
    except BaseException as exc:
        elapsed = time.perf_counter() - started
        if isinstance(exc, (KeyboardInterrupt, SystemExit, asyncio.CancelledError)):
            raise
        return Outcome(None, _as_error(exc), elapsed, tracker.calls, tracker.rounds, output.text())
    elapsed = time.perf_counter() - started
    return Outcome(value, None, elapsed, tracker.calls, tracker.rounds, output.text())


#: Exception messages are cut to this many characters in the child, so a program
#: cannot make the host hold a huge string.
MESSAGE_LIMIT = 64 * 1024


def _message(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # a message that cannot even be built is no message
        return "<unprintable message>"
    if len(text) > MESSAGE_LIMIT:
        kept = MESSAGE_LIMIT - 64  # room for the note, so the whole stays under the limit
        return text[:kept] + f"... [{len(text) - kept} characters cut]"
    return text


def _as_error(exc: BaseException) -> SandboxViolation | SandboxMemoryError | ProgramError:
    if isinstance(exc, SandboxViolation):
        return exc
    if isinstance(exc, MemoryError):
        return SandboxMemoryError("the program ran out of its memory allowance")
    return ProgramError(type(exc).__name__, _message(exc), _program_line(exc.__traceback__))


def _program_line(tb: TracebackType | None) -> int | None:
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
