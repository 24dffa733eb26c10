"""The sandboxed executor: programs run in a child process, never in the host.

Layers, outermost first:

* **Process.** A fresh interpreter (``python -I``) with a minimal environment (no
  API keys), its own address-space limit (``RLIMIT_AS``), and a wall-clock limit the
  host enforces by killing it. Whatever the program does, the host process only ever
  reads length-prefixed ``toolmesh.v1.Value`` messages from it.
* **Static check.** The child validates every program (``validate.check``) before
  compiling it: no imports beyond the allow-list, no names or attributes that reach
  interpreter internals (``__subclasses__``, frames, event loops), no ``getattr``.
* **Namespace.** Builtins are an allow-list; ``open``, ``eval``, ``getattr`` and the
  like are stubs that raise :class:`SandboxViolation`; ``toolmesh`` holds only
  ``call`` and ``asyncio`` only ``gather``/``ensure_future``.

One child serves many runs, one at a time; after a kill or a crash the next run
starts a new one.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from toolmesh import ClientSettings
from toolmesh.wire import RawImage
from toolmesh_codegen import _protocol
from toolmesh_codegen._errors import (
    ProgramError,
    SandboxCrashed,
    SandboxError,
    SandboxMemoryError,
    SandboxTimeout,
    SandboxViolation,
)

__all__ = ["Limits", "RunResult", "Sandbox"]

_STARTUP_TIMEOUT_S = 120.0
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MEMORY_MB = 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """What one run may use.

    Args:
        timeout_s: Wall-clock seconds for one run, after which the child is killed.
        memory_mb: Address space the program may add to the runtime's own.
        output_bytes: ``print`` output kept; the rest is cut.
    """

    timeout_s: float = DEFAULT_TIMEOUT_S
    memory_mb: int = DEFAULT_MEMORY_MB
    output_bytes: int = 64 * 1024

    @classmethod
    def from_env(cls) -> Limits:
        """Limits from ``TOOLMESH_SANDBOX_TIMEOUT`` / ``TOOLMESH_SANDBOX_MEMORY_MB``."""
        env = os.environ
        return cls(
            timeout_s=float(env.get("TOOLMESH_SANDBOX_TIMEOUT") or DEFAULT_TIMEOUT_S),
            memory_mb=int(env.get("TOOLMESH_SANDBOX_MEMORY_MB") or DEFAULT_MEMORY_MB),
        )


@dataclass(frozen=True, slots=True)
class RunResult:
    """A program's value and how it ran.

    ``elapsed_s`` is the wall time of ``solve`` alone (no process start-up);
    ``calls`` the mesh calls it made; ``rounds`` the longest chain of calls that
    waited for one another (for a serial program, its number of calls).
    """

    value: Any
    elapsed_s: float
    calls: int
    rounds: int
    stdout: str


class Sandbox:
    """Runs programs in a child process; use as an async context manager.

    One sandbox runs one program at a time (concurrent ``run`` calls queue); it can be
    shared by tasks of one event loop.

    Args:
        address: The gateway the programs' ``toolmesh.call`` reaches; default
            ``TOOLMESH_ADDRESS`` or ``localhost:50051``.
        limits: Per-run limits; default from the environment.
        call_timeout: Seconds per mesh call inside the program.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        limits: Limits | None = None,
        call_timeout: float = 60.0,
    ) -> None:
        self.address = ClientSettings.resolve(address).address
        self.limits = limits or Limits.from_env()
        self.call_timeout = call_timeout
        self._process: asyncio.subprocess.Process | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=40)
        self._stderr_task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    async def __aenter__(self) -> Sandbox:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def run(self, source: str, /, **inputs: Any) -> RunResult:
        """Run ``source``'s ``solve(**inputs)`` in the child and return its value.

        Image inputs may be ``pathlib.Path`` or ``bytes`` (image files), PIL images or
        NumPy arrays; ``solve`` receives PIL images. Other inputs must be plain data.

        Raises:
            SandboxViolation: the program was refused or tried something forbidden.
            SandboxTimeout: it ran past ``limits.timeout_s`` (the child was killed).
            SandboxMemoryError: it needed more than ``limits.memory_mb``.
            SandboxCrashed: the child died without answering.
            ProgramError: the program raised (type, message and line are kept).
        """
        if self._closed:
            raise SandboxError("this sandbox has been closed")
        request = _protocol.encode(
            {
                "source": source,
                "inputs": {k: _as_wire_input(v) for k, v in inputs.items()},
                "output_limit": self.limits.output_bytes,
            }
        )
        async with self._lock:
            process = await self._ensure_process()
            assert process.stdin is not None and process.stdout is not None
            try:
                process.stdin.write(request)
                await process.stdin.drain()
                body = await asyncio.wait_for(
                    _read_frame(process.stdout), timeout=self.limits.timeout_s
                )
            except TimeoutError:
                await self._kill()
                raise SandboxTimeout(
                    f"the program ran longer than {self.limits.timeout_s:g} s and was killed"
                ) from None
            except (asyncio.IncompleteReadError, ConnectionError, BrokenPipeError) as exc:
                raise await self._crashed() from exc
        return _result(_protocol.decode(body), self.limits)

    async def aclose(self) -> None:
        """Stop the child. Idempotent."""
        self._closed = True
        process = self._process
        if process is not None and process.returncode is None:
            assert process.stdin is not None
            with contextlib.suppress(Exception):
                process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), timeout=5)
            except TimeoutError:
                await self._kill()
        if self._stderr_task is not None:
            self._stderr_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stderr_task
        self._process = None

    async def _ensure_process(self) -> asyncio.subprocess.Process:
        if self._process is not None and self._process.returncode is None:
            return self._process
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "TOOLMESH_ADDRESS": self.address,
            "TOOLMESH_TIMEOUT": str(self.call_timeout),
            "TOOLMESH_SANDBOX_MEMORY_MB": str(self.limits.memory_mb),
            "MALLOC_ARENA_MAX": "2",
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-m",
            "toolmesh_codegen._child",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            limit=_protocol.MAX_FRAME,
        )
        self._process = process
        self._stderr.clear()
        assert process.stderr is not None and process.stdout is not None
        self._stderr_task = asyncio.ensure_future(self._drain_stderr(process.stderr))
        try:
            body = await asyncio.wait_for(_read_frame(process.stdout), timeout=_STARTUP_TIMEOUT_S)
        except (TimeoutError, asyncio.IncompleteReadError) as exc:
            await self._kill()
            raise SandboxCrashed(
                f"the sandbox process did not start (gateway {self.address}): "
                + (self._stderr_tail() or "no output")
            ) from exc
        if not _protocol.decode(body).get("ready"):
            await self._kill()
            raise SandboxCrashed("the sandbox process sent an unexpected greeting")
        return process

    async def _drain_stderr(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self._stderr.append(line.decode(errors="replace").rstrip())

    def _stderr_tail(self) -> str:
        return "\n".join(list(self._stderr)[-12:])

    async def _kill(self) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    async def _crashed(self) -> SandboxCrashed:
        process = self._process
        code = await process.wait() if process is not None else None
        await asyncio.sleep(0.05)  # let the last stderr lines arrive
        how = f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        tail = self._stderr_tail()
        return SandboxCrashed(f"the sandbox process died ({how})" + (f":\n{tail}" if tail else ""))


async def _read_frame(stream: asyncio.StreamReader) -> bytes:
    header = await stream.readexactly(_protocol.HEADER.size)
    (size,) = _protocol.HEADER.unpack(header)
    if size > _protocol.MAX_FRAME:
        raise SandboxCrashed(f"the sandbox sent a {size}-byte message, over the limit")
    return await stream.readexactly(size)


def _as_wire_input(value: Any) -> Any:
    if isinstance(value, Path):
        return RawImage(encoded=value.read_bytes())
    if isinstance(value, (bytes, bytearray)):
        return RawImage(encoded=bytes(value))
    return value


def _result(payload: dict[str, Any], limits: Limits) -> RunResult:
    error = payload.get("error")
    if error:
        kind = error.get("kind")
        message = str(error.get("message", ""))
        if kind == "program":
            raise ProgramError(str(error.get("type")), message, int(error.get("line") or 0) or None)
        if kind == "memory":
            raise SandboxMemoryError(f"{message} ({limits.memory_mb} MiB)")
        raise SandboxViolation(message)
    return RunResult(
        value=payload.get("value"),
        elapsed_s=float(payload.get("elapsed_s", 0.0)),
        calls=int(payload.get("calls", 0)),
        rounds=int(payload.get("rounds", 0)),
        stdout=str(payload.get("stdout", "")),
    )
