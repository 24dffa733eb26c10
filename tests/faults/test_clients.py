"""Clients that misbehave: they vanish mid-call, send half a request, or read slowly.

One mesh for the module (its own: the session mesh is never touched). Through
every fault, background callers keep calling ``greyscale`` on images whose
answers are computed here; each test ends by checking that they all got the
right answer, that the gateway still serves (health SERVING, a good ``find``)
and that it has no calls left in flight to Triton.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import socket
import struct
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import toolmesh
from tests.faults.support import (
    DATA,
    END_HEADERS,
    HEADERS,
    PREFACE,
    SERVING,
    Load,
    RawH2,
    call_headers,
    decode_call_response,
    frame,
    grpc_message,
    health,
    in_flight,
    pattern,
    settings,
    wait_until,
    window_update,
)
from toolmesh.data import STREET_FRAMES
from toolmesh_local.mesh import LocalMesh

pytestmark = pytest.mark.timeout(120)

IMAGES = [pattern(seed) for seed in range(4)]
STREET = sorted(STREET_FRAMES.glob("*.jpg"))[0]
# find on a frame twice the size: long enough to be caught in flight.
# A call slow enough (~0.2 s on these cores) to be caught in flight: a PNG, which no decoder
# can shortcut the way libjpeg's reduced-scale decoding shortcuts a large JPEG.
BIG = Image.open(STREET).convert("RGB").resize((3072, 2304))
BIG_FILE = io.BytesIO()
BIG.save(BIG_FILE, format="PNG", compress_level=1)
BIG_BYTES = BIG_FILE.getvalue()
SMALL_PNG = io.BytesIO()
Image.fromarray(pattern(99, (48, 64))).save(SMALL_PNG, format="PNG")
# resize a 64x48 PNG to 1024x768: a 2.4 MB response from a request of a few kB.
RESIZE_ARGS = {"image": SMALL_PNG.getvalue(), "width": 1024, "height": 768}


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    local = LocalMesh(
        run_dir=tmp_path_factory.mktemp("clients"), models=["find", "greyscale", "resize"]
    )
    local.start(timeout=180)
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="module")
def reference(mesh: LocalMesh) -> list[dict]:
    """The people ``find`` sees on BIG, asked once by a well-behaved client."""

    async def ask() -> list[dict]:
        async with toolmesh.Client(mesh.address, timeout=60) as client:
            return await client.call("find", image=BIG_BYTES, object_name="person")

    people = asyncio.run(ask())
    assert len(people) >= 3  # the street frame shows several pedestrians
    return people


@pytest.fixture
async def background(mesh: LocalMesh) -> AsyncIterator[Load]:
    """Four well-behaved callers for the length of a test; all must be answered right."""
    load = Load(IMAGES)
    async with toolmesh.Client(mesh.address, timeout=30) as client:
        load.start(client, callers=4)
        try:
            yield load
        finally:
            await load.finish()
    assert load.errors == [], [repr(e) for e in load.errors[:5]]
    assert load.wrong == []


async def still_serving(mesh: LocalMesh, load: Load, reference: list[dict]) -> None:
    """After a fault: nothing left in flight, SERVING, and good calls (new ones too) succeed."""
    await wait_until(lambda: _none_in_flight(mesh.address), "no calls in flight to Triton")
    assert await health(mesh.address) == SERVING
    ok = load.ok
    await wait_until(lambda: load.ok >= ok + 10, "10 more good background calls")
    async with toolmesh.Client(mesh.address, timeout=60) as client:
        assert await client.call("find", image=BIG_BYTES, object_name="person") == reference
    assert mesh.gateway is not None and mesh.gateway.poll() is None, "the gateway exited"


async def _none_in_flight(address: str) -> bool:
    return await in_flight(address) == 0


async def slow_calls(client: toolmesh.Client, count: int) -> list[asyncio.Task]:
    """``count`` finds on BIG, returned once the gateway has one in flight to Triton."""
    tasks = [
        asyncio.create_task(client.call("find", image=BIG_BYTES, object_name="person"))
        for _ in range(count)
    ]
    await wait_until(lambda: _some_in_flight(client.address), "a find in flight", timeout=30)
    return tasks


async def _some_in_flight(address: str) -> bool:
    return await in_flight(address) > 0


# --- c: clients that disconnect mid-call -----------------------------------------------


async def test_caller_cancels_calls_in_flight(
    mesh: LocalMesh, background: Load, reference: list[dict]
) -> None:
    async with toolmesh.Client(mesh.address, timeout=60) as client:
        tasks = await slow_calls(client, 6)
        for task in tasks:
            task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    # A caller's own cancellation stays asyncio.CancelledError; a call that won the
    # race has the right answer.
    cancelled = [o for o in outcomes if isinstance(o, asyncio.CancelledError)]
    assert cancelled, "no call was cancelled in flight"
    assert all(o == reference for o in outcomes if o not in cancelled), outcomes
    await still_serving(mesh, background, reference)


async def test_channel_closed_under_calls_in_flight(
    mesh: LocalMesh, background: Load, reference: list[dict]
) -> None:
    client = toolmesh.Client(mesh.address, timeout=60)
    tasks = await slow_calls(client, 6)
    await client.aclose()  # closes the channel under the six calls
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    # How the SDK reports it is checked below; here: the calls ended, none with a
    # wrong answer, and the gateway cleaned up after them.
    stopped = (toolmesh.Cancelled, asyncio.CancelledError)
    assert any(isinstance(o, stopped) for o in outcomes), outcomes
    assert all(isinstance(o, stopped) or o == reference for o in outcomes), outcomes
    await still_serving(mesh, background, reference)


# grpc.aio raises asyncio.CancelledError (not an AioRpcError with CANCELLED) for a call
# that the channel's close() cut off; the client must not let that end a task nobody
# cancelled, and says toolmesh.Cancelled instead.
async def test_closing_the_client_under_a_call_raises_cancelled_not_cancellederror(
    mesh: LocalMesh,
) -> None:
    client = toolmesh.Client(mesh.address, timeout=60)
    tasks = await slow_calls(client, 2)
    await client.aclose()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert not any(t.cancelled() for t in tasks), "nobody cancelled these tasks"
    assert all(isinstance(o, toolmesh.Cancelled) for o in outcomes), outcomes


CLIENT_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    import toolmesh

    async def main():
        data = open(sys.argv[2], "rb").read()
        async with toolmesh.Client(sys.argv[1], timeout=60) as client:
            while True:
                await asyncio.gather(
                    *(client.call("find", image=data, object_name="person") for _ in range(4))
                )

    asyncio.run(main())
    """
)


async def test_client_process_killed_mid_call(
    mesh: LocalMesh, background: Load, reference: list[dict], tmp_path: Path
) -> None:
    image = tmp_path / "big.jpg"
    image.write_bytes(BIG_BYTES)
    process = subprocess.Popen(
        [sys.executable, "-c", CLIENT_SCRIPT, mesh.address, str(image)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        await wait_until(lambda: _some_in_flight(mesh.address), "the client's find in flight")
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        os.kill(process.pid, signal.SIGKILL)  # the kernel resets its connection
        await asyncio.to_thread(process.wait, 10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == -signal.SIGKILL
    await still_serving(mesh, background, reference)


def _half_requests(address: str) -> list[RawH2]:
    """Connections that stop at different points of a request and stay open."""
    body = grpc_message("find", image=BIG_BYTES[:4000], object_name="person")
    stalled: list[RawH2] = []

    def connect() -> RawH2:
        conn = RawH2(address)
        stalled.append(conn)
        return conn

    # The preface and half a SETTINGS frame.
    connect().send((PREFACE + settings(enable_push=0))[:30])
    # Headers, no body.
    conn = connect()
    conn.open()
    conn.send(frame(HEADERS, END_HEADERS, 1, call_headers(address)))
    # Headers and a message whose length prefix promises 1 MB more than is sent.
    conn = connect()
    conn.open()
    conn.send(frame(HEADERS, END_HEADERS, 1, call_headers(address)))
    conn.send(frame(DATA, 0, 1, b"\x00" + struct.pack(">I", 1_000_000) + body[5:1000]))
    # A DATA frame cut off in the middle of its payload.
    conn = connect()
    conn.open()
    conn.send(frame(HEADERS, END_HEADERS, 1, call_headers(address)))
    conn.send(frame(DATA, 0, 1, body[:8000])[:3000])
    # Not HTTP/2 at all.
    connect().send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + os.urandom(512))
    return stalled


async def test_half_sent_requests_from_raw_sockets(
    mesh: LocalMesh, background: Load, reference: list[dict]
) -> None:
    stalled = await asyncio.to_thread(_half_requests, mesh.address)
    try:
        # While they hang there, the gateway serves everyone else.
        ok = background.ok
        await wait_until(lambda: background.ok >= ok + 20, "good calls beside half requests")
        assert await health(mesh.address) == SERVING
    finally:
        for i, conn in enumerate(stalled):
            if i % 2:  # every other one leaves with a TCP reset rather than a FIN
                conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
    await still_serving(mesh, background, reference)


# --- d: slow clients -------------------------------------------------------------------


def _read_slowly(address: str) -> tuple[object, int]:
    """The resize, read 8 kB at a time with a pause after each (about 3 s for 2.4 MB)."""
    conn = RawH2(address)
    try:
        conn.open()
        conn.request(1, grpc_message("resize", **RESIZE_ARGS))
        data = conn.read_response(1, chunk=8192, pause=0.01)
    finally:
        conn.close()
    return decode_call_response(data), len(data)


async def test_slow_reader_gets_the_whole_answer_and_slows_no_one(
    mesh: LocalMesh, background: Load, reference: list[dict]
) -> None:
    async with toolmesh.Client(mesh.address, timeout=60) as client:
        expected = np.asarray(await client.call("resize", **RESIZE_ARGS))
    ok = background.ok
    slow, size = await asyncio.to_thread(_read_slowly, mesh.address)
    assert size > 2_000_000
    assert slow.size == (1024, 768)
    np.testing.assert_array_equal(np.asarray(slow), expected)
    assert background.ok >= ok + 20, "background calls stalled behind the slow reader"
    await still_serving(mesh, background, reference)


def _stalled_readers(address: str) -> list[RawH2]:
    """Clients that ask for the 2.4 MB resize and never read a byte of it."""
    message = grpc_message("resize", **RESIZE_ARGS)
    # A zero flow-control window: the gateway may not send a byte of DATA.
    closed_window = RawH2(address)
    closed_window.open(initial_window_size=0)
    closed_window.request(1, message)
    # Windows wide open but a 4 kB socket buffer nobody drains: TCP pushes back.
    full_socket = RawH2(address, receive_buffer=4096)
    full_socket.open(initial_window_size=2**31 - 1)
    full_socket.send(window_update(0, 2**31 - 1 - 65535))
    full_socket.request(1, message)
    return [closed_window, full_socket]


async def test_clients_that_never_read_their_answer_slow_no_one(
    mesh: LocalMesh, background: Load, reference: list[dict]
) -> None:
    stalled = await asyncio.to_thread(_stalled_readers, mesh.address)
    try:
        ok = background.ok
        await wait_until(lambda: background.ok >= ok + 40, "good calls beside stalled readers")
        async with toolmesh.Client(mesh.address, timeout=60) as client:
            big = await client.call("resize", **RESIZE_ARGS)  # the same large answer flows
            assert big.size == (1024, 768)
        assert await health(mesh.address) == SERVING
    finally:
        for conn in stalled:
            with contextlib.suppress(OSError):
                conn.close()
    await still_serving(mesh, background, reference)
