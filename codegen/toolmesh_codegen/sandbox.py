"""The sandboxed executor: programs run in jailed, single-use child processes.

Layers, outermost first:

* **Process.** A zygote started once per sandbox in a jail (``_jail``): new user,
  pid, network, mount, ipc and uts namespaces, uid/gid 65534, no capabilities,
  ``no_new_privs``, a read-only view of the interpreter and the packages only. Each
  run gets a fresh process forked from it (a few are kept forked ahead, so a run
  does not wait for one), which applies rlimits (address space, CPU, open files,
  file size 0, no processes) and a seccomp allow-list before it reads the program,
  and is killed when the run ends. There is no network in the jail: the program's
  ``toolmesh.call`` goes to this process over the child's socket, and the sandbox
  performs it with its own client (or the ``call`` it was given).
* **Static check.** The child validates every program (``validate.check``) before
  compiling it.
* **Namespace.** Builtins are an allow-list; ``toolmesh`` holds only ``call``,
  ``asyncio`` only ``gather``/``ensure_future``/``create_task``; images are
  ``SandboxImage`` proxies exposing an allow-list of reads, never Pillow objects.

One deadline covers sending the program, its calls and reading the answer; a
malformed or oversized message from a child kills it. Every failure is one of the
errors in ``_errors``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from google.protobuf.message import DecodeError

from toolmesh import ClientSettings
from toolmesh.wire import RawImage, WireFormatError
from toolmesh_codegen import _protocol
from toolmesh_codegen._errors import (
    IsolationUnavailable,
    ProgramError,
    SandboxCrashed,
    SandboxError,
    SandboxMemoryError,
    SandboxTimeout,
    SandboxViolation,
)
from toolmesh_codegen._jail import isolation_status, jail_command

__all__ = ["CallFunction", "Limits", "RunResult", "Sandbox", "require_isolation"]

#: ``async (function, **arguments) -> result``: how a program's calls reach the mesh.
CallFunction = Callable[..., Awaitable[Any]]

_STARTUP_TIMEOUT_S = 120.0
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MEMORY_MB = 1024
DEFAULT_POOL = 2
_STDERR_KEPT = _protocol.MAX_MESSAGE_CHARS


@dataclass(frozen=True, slots=True)
class Limits:
    """What one run may use.

    Args:
        timeout_s: Wall-clock seconds for one run (sending it, its calls, the answer),
            after which its process is killed.
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


def require_isolation() -> None:
    """Raise :class:`IsolationUnavailable` unless this machine can jail programs.

    This is the check the CLI makes before running untrusted code (see
    ``_jail.isolation_status`` for what is probed).
    """
    status = isolation_status()
    if not status.available:
        raise IsolationUnavailable(status.reason)


class _Zygote:
    """The jailed process that forks one child per run; see ``_zygote``."""

    def __init__(self, process: asyncio.subprocess.Process, control: socket.socket) -> None:
        self.process = process
        self.control = control
        self.lock = asyncio.Lock()
        self.stderr = bytearray()
        self.stderr_task: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls) -> _Zygote:
        host_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            process = await asyncio.create_subprocess_exec(
                *jail_command([sys.executable, "-I", "-m", "toolmesh_codegen._zygote"]),
                stdin=child_end.fileno(),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        finally:
            child_end.close()
        host_end.setblocking(False)
        zygote = cls(process, host_end)
        assert process.stderr is not None
        zygote.stderr_task = asyncio.ensure_future(zygote._drain(process.stderr))
        loop = asyncio.get_running_loop()
        try:
            greeting = await asyncio.wait_for(
                loop.sock_recv(host_end, 64), timeout=_STARTUP_TIMEOUT_S
            )
        except (TimeoutError, ConnectionError) as exc:
            await zygote.close()
            raise SandboxCrashed(f"the sandbox did not start: {zygote.tail()}") from exc
        if greeting != b"ready":
            await zygote.close()
            raise SandboxCrashed(f"the sandbox did not start: {zygote.tail() or 'no greeting'}")
        return zygote

    async def _drain(self, stream: asyncio.StreamReader) -> None:
        """Keep the last 64 KiB the zygote wrote to stderr, however much it writes."""
        while chunk := await stream.read(65536):
            self.stderr += chunk
            del self.stderr[:-_STDERR_KEPT]

    def tail(self) -> str:
        return bytes(self.stderr[-4000:]).decode(errors="replace").strip()

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    async def spawn(self, limits: Limits) -> _Child:
        """A fresh confined child, connected to this process by a socket of its own."""
        ours, theirs = socket.socketpair()
        loop = asyncio.get_running_loop()
        memory = max(0, limits.memory_mb) * 1024 * 1024
        cpu_s = max(1, math.ceil(limits.timeout_s) + 1)
        try:
            async with self.lock:
                socket.send_fds(
                    self.control, [f"spawn {memory} {cpu_s}".encode()], [theirs.fileno()]
                )
                answer = await loop.sock_recv(self.control, 64)
        except OSError as exc:
            ours.close()
            raise SandboxCrashed(f"the sandbox process died: {self.tail()}") from exc
        finally:
            theirs.close()
        if not answer.startswith(b"pid "):
            ours.close()
            raise SandboxCrashed(f"the sandbox process died: {self.tail() or 'no answer'}")
        reader, writer = await asyncio.open_connection(sock=ours, limit=2**16)
        return _Child(int(answer.split()[1]), reader, writer)

    async def kill(self, child: _Child) -> None:
        """End ``child`` (idempotent; it may have exited already)."""
        child.writer.close()
        if self.alive:
            with contextlib.suppress(OSError):
                async with self.lock:
                    self.control.send(f"kill {child.pid}".encode())

    async def close(self) -> None:
        self.control.close()
        if self.alive:
            try:
                await asyncio.wait_for(self.process.wait(), timeout=5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                await self.process.wait()
        if self.stderr_task is not None:
            self.stderr_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.stderr_task


@dataclass(slots=True)
class _Child:
    pid: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


class Sandbox:
    """Runs programs in jailed single-use processes; use as an async context manager.

    Runs may be concurrent (each has its own process); it can be shared by the tasks
    of one event loop.

    Args:
        address: The gateway the programs' ``toolmesh.call`` reaches (through this
            process); default ``TOOLMESH_ADDRESS`` or ``localhost:50051``. Unused
            when ``call`` is given.
        limits: Per-run limits; default from the environment.
        call_timeout: Seconds per mesh call inside the program.
        call: Performs the programs' mesh calls instead of a client of the
            sandbox's own (the batch runner passes ``toolmesh.call``, so its
            recording client sees them).
        pool: Processes kept forked ahead of runs.

    Raises:
        IsolationUnavailable: (from the first ``run``) this machine cannot jail
            programs; nothing runs weaker instead.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        limits: Limits | None = None,
        call_timeout: float = 60.0,
        call: CallFunction | None = None,
        pool: int = DEFAULT_POOL,
    ) -> None:
        self.address = ClientSettings.resolve(address).address
        self.limits = limits or Limits.from_env()
        self.call_timeout = call_timeout
        self.pool_size = max(0, pool)
        self._call = call
        self._client: Any = None
        self._zygote: _Zygote | None = None
        self._start_lock = asyncio.Lock()
        self._ready: list[_Child] = []
        self._refill: asyncio.Task[None] | None = None
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
        """Run ``source``'s ``solve(**inputs)`` in a fresh jailed process.

        Image inputs may be ``pathlib.Path`` or ``bytes`` (image files), PIL images or
        NumPy arrays; ``solve`` receives them as ``SandboxImage`` proxies. Other inputs
        must be plain data.

        Raises:
            IsolationUnavailable: this machine cannot jail programs.
            SandboxViolation: the program was refused or tried something forbidden.
            SandboxTimeout: it ran past ``limits.timeout_s`` (its process was killed).
            SandboxMemoryError: it needed more than ``limits.memory_mb``.
            SandboxCrashed: its process died or sent a malformed message.
            ProgramError: the program raised (type, message and line are kept).
        """
        request = {
            "run": {
                "source": source,
                "inputs": {k: _as_wire_input(v) for k, v in inputs.items()},
                "output_limit": self.limits.output_bytes,
            }
        }
        return _result(await self._exchange(request), self.limits)

    async def run_unchecked(self, code: str) -> Any:
        """Test-only: run arbitrary Python (full builtins, no static check) in a jailed
        process and return its global ``result``.

        Refused with :class:`SandboxViolation` unless ``TOOLMESH_SANDBOX_TEST_ENTRY=1``
        was set when the sandbox started; the jail tests use it to show what the process
        layer holds back on its own.
        """
        return _result(await self._exchange({"unchecked": code}), self.limits).value

    async def aclose(self) -> None:
        """Stop the processes and the sandbox's own client. Idempotent."""
        self._closed = True
        if self._refill is not None:
            self._refill.cancel()
            with contextlib.suppress(asyncio.CancelledError, SandboxError):
                await self._refill
        zygote, self._zygote = self._zygote, None
        ready, self._ready = self._ready, []
        if zygote is not None:
            for child in ready:
                await zygote.kill(child)
            await zygote.close()
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    # -- processes --------------------------------------------------------------------

    async def _ensure_zygote(self) -> _Zygote:
        async with self._start_lock:
            if self._closed:
                raise SandboxError("this sandbox has been closed")
            if self._zygote is not None and self._zygote.alive:
                return self._zygote
            require_isolation()
            if self._zygote is not None:
                await self._zygote.close()
                self._ready.clear()
            self._zygote = await _Zygote.start()
            return self._zygote

    async def _take_child(self) -> tuple[_Zygote, _Child]:
        zygote = await self._ensure_zygote()
        child = self._ready.pop() if self._ready else await zygote.spawn(self.limits)
        if self._refill is None or self._refill.done():
            self._refill = asyncio.ensure_future(self._fill(zygote))
        return zygote, child

    async def _fill(self, zygote: _Zygote) -> None:
        while len(self._ready) < self.pool_size and zygote.alive and not self._closed:
            child = await zygote.spawn(self.limits)
            if self._closed or zygote is not self._zygote:
                await zygote.kill(child)
                return
            self._ready.append(child)

    # -- one run ----------------------------------------------------------------------

    async def _exchange(self, request: dict[str, Any]) -> dict[str, Any]:
        frame = _protocol.encode(request)
        zygote, child = await self._take_child()
        calls: set[asyncio.Task[None]] = set()
        try:
            return await asyncio.wait_for(
                self._converse(child, frame, calls), timeout=self.limits.timeout_s
            )
        except TimeoutError:
            raise SandboxTimeout(
                f"the program ran longer than {self.limits.timeout_s:g} s and was killed"
            ) from None
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise SandboxCrashed(
                "the sandbox process died without answering"
                + (f":\n{zygote.tail()}" if zygote.tail() else "")
            ) from exc
        except (DecodeError, WireFormatError, ValueError, RecursionError, KeyError) as exc:
            raise SandboxCrashed(
                f"the sandbox process sent a malformed message ({type(exc).__name__}) "
                "and was killed"
            ) from exc
        finally:
            for task in calls:  # no call outlives its run
                task.cancel()
            await zygote.kill(child)

    async def _converse(
        self, child: _Child, frame: bytes, calls: set[asyncio.Task[None]]
    ) -> dict[str, Any]:
        child.writer.write(frame)
        await child.writer.drain()
        while True:
            message = _protocol.decode(await _read_frame(child.reader), _protocol.keep_raw)
            if "done" in message:
                done = message["done"]
                if not isinstance(done, dict):
                    raise ValueError("done is not a mapping")
                payload: dict[str, Any] = _images_to_pil(done)
                return payload
            request = message["call"]
            task = asyncio.ensure_future(self._serve_call(child, request))
            calls.add(task)
            task.add_done_callback(calls.discard)

    async def _serve_call(self, child: _Child, request: dict[str, Any]) -> None:
        call_id = int(request["id"])
        arguments = request.get("arguments") or {}
        try:
            if not isinstance(arguments, dict):
                raise TypeError("arguments must be a mapping")
            value = await self._perform(str(request["function"]), arguments)
            reply = {"reply": call_id, "value": value}
            frame = _protocol.encode(reply)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            message = str(exc)[: _protocol.MAX_MESSAGE_CHARS]
            frame = _protocol.encode(
                {"reply": call_id, "error": {"type": type(exc).__name__, "message": message}}
            )
        child.writer.write(frame)
        with contextlib.suppress(ConnectionError):
            await child.writer.drain()

    async def _perform(self, function: str, arguments: dict[str, Any]) -> Any:
        if self._call is not None:
            return await self._call(function, **arguments)
        if self._client is None:
            import toolmesh

            self._client = toolmesh.Client(self.address, timeout=self.call_timeout)
        return await self._client.call(function, **arguments)


async def _read_frame(stream: asyncio.StreamReader) -> bytes:
    header = await stream.readexactly(_protocol.HEADER.size)
    (size,) = _protocol.HEADER.unpack(header)
    if size > _protocol.MAX_FRAME:
        raise ValueError(f"a {size}-byte message, over the limit")
    return await stream.readexactly(size)


def _images_to_pil(value: Any) -> Any:
    if isinstance(value, RawImage):
        from toolmesh.wire import raw_image_to_pil

        return raw_image_to_pil(value)
    if isinstance(value, list):
        return [_images_to_pil(v) for v in value]
    if isinstance(value, dict):
        return {k: _images_to_pil(v) for k, v in value.items()}
    return value


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
        message = str(error.get("message", ""))[: _protocol.MAX_MESSAGE_CHARS]
        if kind == "program":
            raise ProgramError(str(error.get("type")), message, int(error.get("line") or 0) or None)
        if kind == "memory":
            raise SandboxMemoryError(f"{message} ({limits.memory_mb} MiB)")
        if kind == "internal":
            raise SandboxCrashed(f"the sandbox runtime failed:\n{message}")
        raise SandboxViolation(message)
    return RunResult(
        value=payload.get("value"),
        elapsed_s=float(payload.get("elapsed_s", 0.0)),
        calls=int(payload.get("calls", 0)),
        rounds=int(payload.get("rounds", 0)),
        stdout=str(payload.get("stdout", "")),
    )
