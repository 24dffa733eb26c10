"""The demo's two programs (serial loop, concurrent gather) agree on real frames."""

from __future__ import annotations

from pathlib import Path

import toolmesh
from toolmesh_local.demo import count_concurrent, count_serial


async def test_serial_and_concurrent_programs_agree(
    client: toolmesh.Client, street_paths: list[Path]
) -> None:
    frames = [p.read_bytes() for p in street_paths[:6]]
    serial = await count_serial(client, frames)
    concurrent = await count_concurrent(client, frames)
    assert concurrent == serial
    assert all(people >= 3 for people, _ in serial)
