"""Recording a program's call graph: a few tasks of it run against a live mesh.

``toolmesh plan --program`` needs the graph of calls the program makes, which
depends on its data (one call per detection), so it runs the program on a few
images at concurrency 1 with the batch runner, exactly as ``toolmesh run
--trusted`` would, and reads the graph from the results it records
(:mod:`toolmesh_planner.workload`); one task runs first as a warm-up, unrecorded.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import toolmesh
from toolmesh.batch import BatchConfig, read_results, run_batch

__all__ = ["record_program"]


async def record_program(
    program: Path, images: Path, *, tasks: int, address: str | None = None
) -> list[dict[str, Any]]:
    """Run ``tasks`` tasks of ``program`` one at a time; return their records.

    The program runs in this process (trusted): record an untrusted one with
    ``toolmesh run`` (sandboxed) and plan from its results file instead.
    """
    with tempfile.TemporaryDirectory(prefix="toolmesh-plan-") as folder:
        out = Path(folder) / "record.jsonl"
        config = BatchConfig(program=program, images=images, tasks=tasks, out=out, concurrency=1)
        settings = toolmesh.ClientSettings.resolve(address)
        warmup = BatchConfig(program=program, images=images, tasks=1, out=out, concurrency=1)
        await run_batch(warmup, toolmesh.GrpcTransport.from_settings(settings))
        out.unlink()
        await run_batch(config, toolmesh.GrpcTransport.from_settings(settings))
        return read_results(out)
