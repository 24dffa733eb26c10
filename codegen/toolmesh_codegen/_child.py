"""The sandbox's child process: ``python -I -m toolmesh_codegen._child``.

It connects to the gateway, lowers its own memory limit, then runs one program per
request read from stdin and answers on the original stdout. Anything else written to
stdout (by a library) goes to stderr, so it cannot corrupt the protocol. The host
kills this process when a program overruns its wall-clock limit.
"""

from __future__ import annotations

import asyncio
import os
import resource
import sys
import traceback
from typing import Any, BinaryIO

import toolmesh
from toolmesh.wire import WireFormatError
from toolmesh_codegen import _protocol
from toolmesh_codegen._errors import ProgramError, SandboxMemoryError
from toolmesh_codegen._runtime import execute


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _read_request(stream: BinaryIO) -> dict[str, Any] | None:
    header = _read_exactly(stream, _protocol.HEADER.size)
    if header is None:
        return None
    (size,) = _protocol.HEADER.unpack(header)
    body = _read_exactly(stream, size)
    return None if body is None else _protocol.decode(body)


def _virtual_memory_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _limit_memory(megabytes: int) -> None:
    """Cap the address space at what the runtime already uses plus the allowance."""
    if megabytes <= 0:
        return
    limit = _virtual_memory_bytes() + megabytes * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _error_payload(error: Exception) -> dict[str, Any]:
    if isinstance(error, ProgramError):
        return {
            "kind": "program",
            "type": error.type_name,
            "message": error.message,
            "line": error.line or 0,
        }
    kind = "memory" if isinstance(error, SandboxMemoryError) else "violation"
    return {"kind": kind, "message": str(error)}


async def _serve(requests: BinaryIO, responses: BinaryIO, address: str, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    async with toolmesh.Client(address, timeout=timeout) as client:
        await client.functions()  # connect now, so no run pays for it
        memory_mb = int(os.environ.get("TOOLMESH_SANDBOX_MEMORY_MB", "1024"))
        _limit_memory(memory_mb)
        responses.write(_protocol.encode({"ready": True}))
        responses.flush()
        while True:
            request = await loop.run_in_executor(None, _read_request, requests)
            if request is None:
                return
            outcome = await execute(
                request["source"],
                dict(request.get("inputs") or {}),
                client.call,
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
            else:
                payload["value"] = outcome.value
            try:
                frame = _protocol.encode(payload)
            except (WireFormatError, TypeError, ValueError) as exc:
                payload.pop("value", None)
                payload["error"] = {
                    "kind": "program",
                    "type": "TypeError",
                    "message": f"solve() returned a value that cannot be sent back ({exc}); "
                    "return plain data: numbers, strings, lists, dicts with string keys, images",
                    "line": 0,
                }
                frame = _protocol.encode(payload)
            except MemoryError:
                payload.pop("value", None)
                payload["error"] = {"kind": "memory", "message": "the result is too large"}
                frame = _protocol.encode(payload)
            responses.write(frame)
            responses.flush()


def main() -> None:
    responses = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray writes to stdout end up on stderr
    sys.stdout = sys.stderr
    address = os.environ.get("TOOLMESH_ADDRESS", "localhost:50051")
    timeout = float(os.environ.get("TOOLMESH_TIMEOUT", "60"))
    try:
        asyncio.run(_serve(sys.stdin.buffer, responses, address, timeout))
    except Exception:
        traceback.print_exc()
        sys.exit(70)


if __name__ == "__main__":
    main()
