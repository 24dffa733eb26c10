"""Recording a program's call graph: a few tasks of it run against a live mesh.

``toolmesh plan --program`` needs the graph of calls the program makes, which
depends on its data (one call per detection), so it runs the program on a few
images at concurrency 1 with the batch runner, exactly as ``toolmesh run
--trusted`` would, and reads the graph from the results it records
(:mod:`toolmesh_planner.workload`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import toolmesh
from toolmesh.batch import BatchConfig, read_results, run_batch
from toolmesh_planner.workload import TaskShape, shapes_from_results

__all__ = ["record_program"]


async def record_program(
    program: Path, images: Path, *, tasks: int, address: str | None = None
) -> tuple[TaskShape, ...]:
    """Run ``tasks`` tasks of ``program`` one at a time; return their call graphs.

    The program runs in this process (trusted): record an untrusted one with
    ``toolmesh run`` (sandboxed) and plan from its results file instead.
    """
    with tempfile.TemporaryDirectory(prefix="toolmesh-plan-") as folder:
        out = Path(folder) / "record.jsonl"
        config = BatchConfig(program=program, images=images, tasks=tasks, out=out, concurrency=1)
        settings = toolmesh.ClientSettings.resolve(address)
        await run_batch(config, toolmesh.GrpcTransport.from_settings(settings))
        return shapes_from_results(read_results(out))
