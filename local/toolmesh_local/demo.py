"""``make demo``: people and vehicles per street frame, serial loop vs concurrent calls.

The two programs are the same code but for the ``await``s: the serial one
awaits each call in turn, the concurrent one hands independent calls to
``asyncio.gather``, which is all DiCE-C's rewrite does. Both must agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.table import Table

import toolmesh
from toolmesh.data import STREET_FRAMES

__all__ = ["count_concurrent", "count_serial", "run_demo"]

Counts = tuple[int, int]


async def count_frame(client: toolmesh.Client, image: bytes) -> Counts:
    people = await client.call("find", image=image, object_name="person")
    vehicles = await client.call("find", image=image, object_name="vehicle")
    return len(people), len(vehicles)


async def count_frame_concurrently(client: toolmesh.Client, image: bytes) -> Counts:
    people, vehicles = await asyncio.gather(
        client.call("find", image=image, object_name="person"),
        client.call("find", image=image, object_name="vehicle"),
    )
    return len(people), len(vehicles)


async def count_serial(client: toolmesh.Client, frames: list[bytes]) -> list[Counts]:
    return [await count_frame(client, image) for image in frames]


async def count_concurrent(client: toolmesh.Client, frames: list[bytes]) -> list[Counts]:
    return list(await asyncio.gather(*(count_frame_concurrently(client, f) for f in frames)))


async def _measure(
    address: str, frames: list[bytes]
) -> tuple[list[Counts], float, list[Counts], float]:
    async with toolmesh.Client(address) as client:
        await client.call("find", image=frames[0], object_name="person")  # warm-up
        started = time.perf_counter()
        serial = await count_serial(client, frames)
        serial_s = time.perf_counter() - started
        started = time.perf_counter()
        concurrent = await count_concurrent(client, frames)
        concurrent_s = time.perf_counter() - started
    return serial, serial_s, concurrent, concurrent_s


@contextlib.contextmanager
def _mesh(console: Console, address: str | None) -> Iterator[str]:
    if address:
        yield address
        return
    from toolmesh_local.mesh import LocalMesh

    with tempfile.TemporaryDirectory(prefix="toolmesh-demo-") as run_dir:
        mesh = LocalMesh(run_dir=Path(run_dir))
        started = time.perf_counter()
        with console.status("starting Triton and the gateway…"):
            mesh.start()
        console.print(
            f"mesh up in {time.perf_counter() - started:.1f}s: gateway {mesh.address}, "
            f"Triton {mesh.triton.grpc_url if mesh.triton else '?'}, models {', '.join(mesh.model_names)}"
        )
        try:
            yield mesh.address
        finally:
            mesh.stop()


def run_demo(console: Console, address: str | None, images: Path | None) -> int:
    folder = images or STREET_FRAMES
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not paths:
        console.print(f"[red]no images in {folder}[/red]")
        return 2
    frames = [p.read_bytes() for p in paths]
    with _mesh(console, address) as target:
        serial, serial_s, concurrent, concurrent_s = asyncio.run(_measure(target, frames))

    table = Table("frame", "people", "vehicles", "same in both runs", title="find() per frame")
    for path, s, c in zip(paths, serial, concurrent, strict=True):
        table.add_row(path.name, str(s[0]), str(s[1]), "yes" if s == c else "[red]NO[/red]")
    console.print(table)
    calls = 2 * len(frames)
    console.print(
        f"serial:     {calls} calls in {serial_s:.2f}s ({calls / serial_s:.1f} calls/s)\n"
        f"concurrent: {calls} calls in {concurrent_s:.2f}s ({calls / concurrent_s:.1f} calls/s)\n"
        f"speedup:    {serial_s / concurrent_s:.2f}×"
    )
    if serial != concurrent:
        console.print("[red]serial and concurrent results differ[/red]")
        return 1
    console.print("[green]serial and concurrent results are identical[/green]")
    return 0
