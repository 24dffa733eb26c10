"""One run in a forked, confined sandbox process (forked by ``_zygote``).

The process reads one ``run`` request from the socket the host handed over, runs the
program, forwards each of its mesh calls to the host (``call`` messages; the host
performs them with its own client, so the child needs no network), sends ``done``
and exits. Tasks a program left running die with the process: nothing outlives the
run. Values leave the process only as plain data (images unwrapped from their
proxies), at most ``MAX_RESULT`` bytes and nested at most ``MAX_DEPTH`` deep.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import traceback
from collections.abc import Callable
from typing import Any

from toolmesh.wire import RawImage, WireFormatError, raw_image_to_pil
from toolmesh_codegen import _protocol
from toolmesh_codegen._errors import ProgramError, SandboxMemoryError
from toolmesh_codegen._image import SandboxImage, unwrap_image, wrap_image
from toolmesh_codegen._runtime import execute

__all__ = ["MAX_DEPTH", "TEST_ENTRY_ENV", "serve_one"]

#: Containers nested deeper than this cannot leave the child (protobuf refuses ~50).
MAX_DEPTH = 32

#: Test-only: when ``1`` in the child's environment, an ``unchecked`` request runs
#: arbitrary Python (full builtins) inside the confined child; the jail tests use it
#: to show what the process layer alone holds back.
TEST_ENTRY_ENV = "TOOLMESH_SANDBOX_TEST_ENTRY"

_PLAIN = (type(None), bool, int, float, str, bytes)


def plain(value: Any, depth: int = 0) -> Any:
    """``value`` as data that may leave the child: proxies unwrapped, types checked.

    Raises:
        TypeError: a type that cannot be sent, or nesting deeper than ``MAX_DEPTH``.
    """
    if isinstance(value, _PLAIN):
        return value
    if depth >= MAX_DEPTH:
        raise TypeError(f"the value is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, SandboxImage):
        return unwrap_image(value)
    if isinstance(value, (list, tuple)):
        return [plain(item, depth + 1) for item in value]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"mapping keys must be strings, got {type(key).__name__}")
            out[key] = plain(item, depth + 1)
        return out
    raise TypeError(f"a value of type {type(value).__name__} cannot be sent")


def _images(raw: RawImage) -> SandboxImage:
    return wrap_image(raw_image_to_pil(raw))


class _Channel:
    """The socket to the host: frames out, and replies to calls matched by id."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.ids = itertools.count(1)
        self.errors: dict[str, type[Exception]] = {}

    async def read(self) -> dict[str, Any] | None:
        try:
            header = await self.reader.readexactly(_protocol.HEADER.size)
            (size,) = _protocol.HEADER.unpack(header)
            if size > _protocol.MAX_FRAME:
                return None
            return _protocol.decode(await self.reader.readexactly(size), _images)
        except asyncio.IncompleteReadError:
            return None

    async def send(self, payload: dict[str, Any], limit: int = _protocol.MAX_FRAME) -> None:
        self.writer.write(_protocol.encode(payload, limit))
        await self.writer.drain()

    async def dispatch(self) -> None:
        """Resolve calls with the host's replies until the host goes away."""
        while (message := await self.read()) is not None:
            future = self.pending.pop(int(message.get("reply", 0)), None)
            if future is None or future.done():
                continue
            error = message.get("error")
            if error:
                future.set_exception(self._error(error))
            else:
                future.set_result(message.get("value"))
        for future in self.pending.values():
            if not future.done():
                future.set_exception(ConnectionError("the sandbox host went away"))

    def _error(self, error: dict[str, Any]) -> Exception:
        """The mesh's exception as the program sees it: same type name and message."""
        name = str(error.get("type") or "RemoteError")
        if not name.isidentifier():
            name = "RemoteError"
        kind = self.errors.get(name)
        if kind is None:
            kind = self.errors[name] = type(name, (Exception,), {})
        return kind(str(error.get("message", "")))

    async def call(self, function: str, /, **arguments: Any) -> Any:
        """``toolmesh.call`` in the child: the host performs it."""
        call_id = next(self.ids)
        request = {"id": call_id, "function": function, "arguments": plain(arguments)}
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[call_id] = future
        try:
            await self.send({"call": request}, _protocol.MAX_RESULT)
        except ValueError as exc:
            self.pending.pop(call_id, None)
            raise ValueError(f"the arguments of {function}() are too large") from exc
        return await future


def _error_payload(error: Exception) -> dict[str, Any]:
    if isinstance(error, ProgramError):
        return {
            "kind": "program",
            "type": error.type_name,
            "message": error.message,
            "line": error.line or 0,
        }
    kind = "memory" if isinstance(error, SandboxMemoryError) else "violation"
    return {"kind": kind, "message": str(error)[: _protocol.MAX_MESSAGE_CHARS]}


def _unsendable(reason: str) -> dict[str, Any]:
    return {
        "kind": "program",
        "type": "TypeError",
        "message": f"solve() returned a value that cannot be sent back ({reason}); "
        "return plain data: numbers, strings, lists, dicts with string keys, images",
        "line": 0,
    }


async def _run(channel: _Channel, request: dict[str, Any]) -> dict[str, Any]:
    outcome = await execute(
        str(request["source"]),
        dict(request.get("inputs") or {}),
        channel.call,
        output_limit=int(request.get("output_limit", 64 * 1024)),
    )
    payload: dict[str, Any] = {
        "elapsed_s": outcome.elapsed_s,
        "calls": outcome.calls,
        "rounds": outcome.rounds,
        "stdout": outcome.stdout,
    }
    if outcome.error is not None:
        payload["error"] = _error_payload(outcome.error)
        return payload
    try:
        payload["value"] = plain(outcome.value)
        _protocol.encode({"done": payload}, _protocol.MAX_RESULT)
    except (WireFormatError, TypeError, RecursionError) as exc:
        payload.pop("value", None)
        payload["error"] = _unsendable(str(exc)[:1000])
    except ValueError:
        payload.pop("value", None)
        limit_mib = _protocol.MAX_RESULT // (1024 * 1024)
        payload["error"] = _unsendable(f"it is larger than {limit_mib} MiB")
    except MemoryError:
        payload.pop("value", None)
        payload["error"] = {"kind": "memory", "message": "the result is too large"}
    return payload


def _unchecked(code: str) -> dict[str, Any]:
    if os.environ.get(TEST_ENTRY_ENV) != "1":
        return {"error": {"kind": "violation", "message": "the test entry is not enabled"}}
    namespace: dict[str, Any] = {"__name__": "unchecked"}
    try:
        exec(compile(code, "<unchecked>", "exec"), namespace)
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"[: _protocol.MAX_MESSAGE_CHARS]
        return {"error": {"kind": "program", "type": type(exc).__name__, "message": message}}
    return {"value": plain(namespace.get("result"))}


#: How long a finished child waits for the host to close its end before it exits anyway.
_HANG_UP_S = 5.0


async def _serve(sock: socket.socket) -> None:
    reader, writer = await asyncio.open_connection(sock=sock)
    # drain() returns only once the transport's buffer is empty: the process exits
    # right after its answer, and must not take the answer's tail with it
    writer.transport.set_write_buffer_limits(high=0)
    channel = _Channel(reader, writer)
    request = await channel.read()
    if request is None:
        return
    dispatcher = asyncio.ensure_future(channel.dispatch())
    try:
        if "unchecked" in request:
            payload = _unchecked(str(request["unchecked"]))
        else:
            payload = await _run(channel, dict(request["run"]))
    except Exception:  # the runtime itself failed: say how, in at most 64 KiB
        tail = traceback.format_exc()[-_protocol.MAX_MESSAGE_CHARS :]
        payload = {"error": {"kind": "internal", "message": tail}}
    await channel.send({"done": payload})
    dispatcher.cancel()
    # Stay until the host hangs up: it may still be answering calls of tasks this run
    # left behind, and a reply written to a socket that is already gone would break
    # the host's side of it before it has read the answer.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(reader.read(), _HANG_UP_S)


def serve_one(sock: socket.socket, confine: Callable[[], None]) -> None:
    """Confine this (freshly forked) process, serve one run on ``sock``, and exit."""
    loop = asyncio.new_event_loop()  # before seccomp: the loop needs socketpair/epoll
    confine()
    status = 0
    try:
        loop.run_until_complete(_serve(sock))
    except BaseException:  # the host reports a crash: it sees the socket close
        status = 70
    os._exit(status)
