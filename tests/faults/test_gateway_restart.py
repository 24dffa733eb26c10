"""The gateway SIGKILLed and restarted on the same port while a batch keeps calling.

The batch runner retries transient failures (UNAVAILABLE, DEADLINE_EXCEEDED)
with backoff and writes a task only once it has finished; a task still failing
after its retries is left out for ``--resume``. So: every task ends up in the
results file exactly once, with the right answer (the greyscale of its own
image, computed here), and every task the runner reported as done during the
outage is in the file unchanged: nothing reported done is lost.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import toolmesh
from tests.faults.support import SERVING, health, is_greyscale_of, pattern
from toolmesh import GrpcTransport
from toolmesh.batch import BatchConfig, read_results, run_batch
from toolmesh_local.mesh import LocalMesh

pytestmark = pytest.mark.timeout(120)

TASKS = 120
IMAGES = [pattern(seed, (12, 16)) for seed in range(10)]
PROGRAM = """\
import numpy as np
import toolmesh


async def solve(image):
    grey = await toolmesh.call("greyscale", image=image)
    return np.asarray(grey).astype(int).tolist()
"""


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[LocalMesh]:
    local = LocalMesh(run_dir=tmp_path / "mesh", models=["greyscale"])
    local.start(timeout=180)
    try:
        yield local
    finally:
        local.stop()


def transport(address: str) -> GrpcTransport:
    return GrpcTransport(address, max_message_bytes=32 * 1024 * 1024)


async def test_gateway_killed_and_restarted_while_a_batch_retries(
    mesh: LocalMesh, tmp_path: Path
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for i, image in enumerate(IMAGES):  # task t runs on image t mod 10 (sorted names)
        Image.fromarray(image).save(images / f"img_{i:02d}.png")
    program = tmp_path / "program.py"
    program.write_text(PROGRAM)
    out = tmp_path / "results.jsonl"
    config = BatchConfig(program, images, tasks=TASKS, out=out, concurrency=8, timeout=20)

    reported: list[dict[str, Any]] = []
    killed = asyncio.Event()
    assert mesh.gateway is not None
    victim = mesh.gateway

    def on_task(record: dict[str, Any] | None) -> None:
        if record is not None:
            reported.append(record)
        if len(reported) == 20 and not killed.is_set():
            os.kill(victim.pid, signal.SIGKILL)  # mid-run: 100 tasks still to go
            killed.set()

    async def restart() -> None:
        await killed.wait()
        await asyncio.to_thread(victim.wait, 10)
        await asyncio.sleep(1.0)  # an outage the calls run into, not just a blip
        # Same address: the runner's channel has to reconnect to the new process.
        await asyncio.to_thread(mesh._start_gateway, 60, False)

    restarter = asyncio.create_task(restart())
    first = await run_batch(config, transport(mesh.address), on_task=on_task)
    await asyncio.wait_for(restarter, 90)
    assert killed.is_set() and victim.returncode == -signal.SIGKILL
    assert mesh.gateway is not victim and mesh.gateway.poll() is None
    assert first.failed == 0, "a task failed for good: only transient errors were expected"
    assert first.ok + len(first.unfinished) == TASKS
    retried = [c for r in reported for c in r["calls"] if c["attempts"] > 1]
    assert retried, "no call was retried: the kill did not hit the batch"

    # Anything the retries could not carry through the outage is finished by a resume.
    second = await run_batch(
        BatchConfig(program, images, tasks=TASKS, out=out, concurrency=8, timeout=20, resume=True),
        transport(mesh.address),
    )
    assert second.skipped == first.ok
    assert second.unfinished == [] and second.failed == 0

    records = read_results(out)
    assert sorted(r["task"] for r in records) == list(range(TASKS)), "a task missing or twice"
    for record in records:
        assert record["ok"], record["error"]
        image = IMAGES[record["task"] % len(IMAGES)]
        assert is_greyscale_of(np.array(record["result"]), image), f"task {record['task']}"
    in_file = {r["task"]: r for r in records}
    for record in reported:
        assert in_file[record["task"]] == record, f"task {record['task']} changed or lost"

    assert await health(mesh.address) == SERVING
    async with toolmesh.Client(mesh.address, timeout=20) as client:
        assert is_greyscale_of(await client.call("greyscale", image=IMAGES[0]), IMAGES[0])
