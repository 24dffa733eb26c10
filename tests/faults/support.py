"""What the fault tests share: known inputs with independently computed answers, the
gateway's health and in-flight count, waiting, and a raw HTTP/2 client.

The raw client speaks just enough HTTP/2 (RFC 9113) and HPACK (literal header
fields, no Huffman, RFC 7541 §6.2.2) to send one gRPC call byte by byte, so a
test can stop anywhere: half a request, a request whose response it never
reads, or one it reads a few kilobytes at a time.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

import toolmesh
from toolmesh._client import build_call_request
from toolmesh.v1 import functions_pb2, mesh_pb2, mesh_pb2_grpc
from toolmesh.wire import decode_value, raw_image_to_pil

FUNCTIONS_SERVICE = "toolmesh.v1.Functions"
SERVING = health_pb2.HealthCheckResponse.SERVING


def pattern(seed: int, shape: tuple[int, int] = (24, 32)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


def luma(image: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma, computed here rather than by the code under test."""
    return image.astype(np.float64) @ [0.299, 0.587, 0.114]


def is_greyscale_of(result: object, image: np.ndarray) -> bool:
    grey = np.asarray(result, dtype=np.float64)
    expected = luma(image)
    return grey.shape == expected.shape and float(np.abs(grey - expected).max()) <= 1.0


@dataclass
class Load:
    """Callers that call ``greyscale`` until stopped, each on its own image, and what
    every call ended with: a right answer, a wrong one (the index of the caller), an error."""

    images: list[np.ndarray]
    ok: int = 0
    wrong: list[int] = field(default_factory=list)
    errors: list[Exception] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def caller(self, client: toolmesh.Client, index: int) -> None:
        image = self.images[index % len(self.images)]
        while not self.stop.is_set():
            try:
                grey = await client.call("greyscale", image=image)
            except toolmesh.ToolmeshError as exc:
                self.errors.append(exc)
                await asyncio.sleep(0.05)  # a failing caller does not spin
                continue
            if is_greyscale_of(grey, image):
                self.ok += 1
            else:
                self.wrong.append(index)

    def start(self, client: toolmesh.Client, callers: int) -> None:
        self.tasks = [asyncio.create_task(self.caller(client, i)) for i in range(callers)]

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.wait_for(asyncio.gather(*self.tasks), 30)


async def health(address: str) -> int:
    """The gateway's health status for ``toolmesh.v1.Functions`` (-1: no answer)."""
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=FUNCTIONS_SERVICE), timeout=2
            )
        except grpc.aio.AioRpcError:
            return -1
    return int(reply.status)


async def in_flight(address: str) -> int:
    """Calls the gateway has in flight to Triton, over all endpoints (Mesh Status)."""
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await mesh_pb2_grpc.MeshStub(channel).Status(mesh_pb2.StatusRequest(), timeout=5)
    return sum(e.in_flight for e in reply.endpoints)


async def wait_until(
    check: Callable[[], object], what: str, timeout: float = 30.0, interval: float = 0.1
) -> None:
    """Poll ``check`` (a function or coroutine function) until it is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        assert time.monotonic() < deadline, f"not reached within {timeout:.0f}s: {what}"
        await asyncio.sleep(interval)


# --- a raw HTTP/2 gRPC client ---------------------------------------------------------

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
SETTINGS_ENABLE_PUSH, SETTINGS_INITIAL_WINDOW_SIZE = 0x2, 0x4


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes([kind, flags])
        + struct.pack(">I", stream)
        + payload
    )


def settings(**values: int) -> bytes:
    ids = {"enable_push": SETTINGS_ENABLE_PUSH, "initial_window_size": SETTINGS_INITIAL_WINDOW_SIZE}
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", ids[k], v) for k, v in values.items()))


def window_update(stream: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream, struct.pack(">I", increment))


def _literal(name: str, value: str) -> bytes:
    """HPACK literal header field without indexing, new name, no Huffman (lengths < 127)."""
    n, v = name.encode(), value.encode()
    assert len(n) < 127 and len(v) < 127
    return b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v


def call_headers(authority: str, path: str = "/toolmesh.v1.Functions/Call") -> bytes:
    fields = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]
    return b"".join(_literal(k, v) for k, v in fields)


def grpc_message(function: str, **arguments: object) -> bytes:
    """A length-prefixed, uncompressed gRPC message holding a CallRequest."""
    body = build_call_request(function, arguments).SerializeToString()
    return b"\x00" + struct.pack(">I", len(body)) + body


def decode_call_response(message: bytes) -> object:
    """The SDK's view of a gRPC-framed CallResponse (images as PIL images)."""
    assert message[0] == 0, "compressed responses are not expected"
    (length,) = struct.unpack(">I", message[1:5])
    assert len(message) == 5 + length, f"message of {len(message) - 5} bytes, prefix says {length}"
    response = functions_pb2.CallResponse.FromString(message[5:])
    return decode_value(response.result, raw_image_to_pil)


class RawH2:
    """One TCP connection speaking HTTP/2 by hand; blocking, used from a worker thread."""

    def __init__(self, address: str, *, receive_buffer: int | None = None) -> None:
        host, _, port = address.rpartition(":")
        self.authority = address
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:  # before connect, so the TCP window starts small
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(10)
        self.sock.connect((host, int(port)))
        self._buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def open(self, **settings_values: int) -> None:
        self.send(PREFACE + settings(enable_push=0, **settings_values))

    def request(self, stream: int, message: bytes, *, end: bool = True) -> None:
        self.send(frame(HEADERS, END_HEADERS, stream, call_headers(self.authority)))
        self.send(frame(DATA, END_STREAM if end else 0, stream, message))

    def close(self) -> None:
        self.sock.close()

    def _read_exactly(self, n: int, chunk: int, pause: float) -> bytes:
        while len(self._buffer) < n:
            data = self.sock.recv(chunk)
            if not data:
                raise ConnectionError("the gateway closed the connection")
            self._buffer += data
            if pause:
                time.sleep(pause)
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def read_response(self, stream: int, *, chunk: int = 65536, pause: float = 0.0) -> bytes:
        """Read until ``stream`` ends, ``chunk`` bytes per ``recv`` with ``pause`` between;
        returns the stream's DATA. Acks SETTINGS and PING, and returns the flow-control
        window as data is consumed, as a well-behaved (if slow) client does."""
        data = b""
        while True:
            header = self._read_exactly(9, chunk, pause)
            length = int.from_bytes(header[:3], "big")
            kind, flags = header[3], header[4]
            sid = int.from_bytes(header[5:9], "big") & 0x7FFFFFFF
            payload = self._read_exactly(length, chunk, pause)
            if kind == SETTINGS and not flags & ACK:
                self.send(frame(SETTINGS, ACK, 0))
            elif kind == PING and not flags & ACK:
                self.send(frame(PING, ACK, 0, payload))
            elif kind == GOAWAY:
                raise ConnectionError(f"GOAWAY from the gateway: {payload[8:]!r}")
            elif kind == RST_STREAM and sid == stream:
                raise ConnectionError(f"stream reset by the gateway: {payload.hex()}")
            elif kind == DATA and sid == stream:
                data += payload
                if length:
                    self.send(window_update(0, length) + window_update(stream, length))
            if sid == stream and kind in (DATA, HEADERS) and flags & END_STREAM:
                return data
