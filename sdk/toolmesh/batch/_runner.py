"""Runs one ``async def solve(image)`` program over many images with bounded concurrency.

Task ``i`` runs on image ``i mod n``, or, with a ``seed``, on an image drawn at
random for it (the paper's workload: 1000 tasks with 30 images randomly
assigned; the draw depends only on the seed, the task count and the number of
images, so a resumed run assigns the same images). Each finished task is one JSON line (see ``_jsonl``); a
task whose calls still fail transiently after the retries is *not* written,
so ``--resume`` runs it again, and a resumed run never duplicates a task.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry import trace

from toolmesh._client import Client
from toolmesh._default import use_default_client
from toolmesh._exceptions import RemoteError
from toolmesh._transport import AsyncTransport
from toolmesh.batch._jsonl import ResultsFile
from toolmesh.batch._transport import TRANSIENT, CallRecord, RecordingTransport, current_calls
from toolmesh.wire import result_to_json

__all__ = [
    "BatchConfig",
    "BatchSummary",
    "SolverFactory",
    "assign_images",
    "list_images",
    "load_program",
    "run_batch",
]

tracer = trace.get_tracer(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")

Program = Callable[[Any], Awaitable[Any]]

#: Turns a program file into its ``solve``: ``load_program`` (in-process, the default)
#: or e.g. ``toolmesh_codegen.batch.sandboxed_solver``. A solver with an ``aclose()``
#: coroutine method is closed when the batch ends.
SolverFactory = Callable[[Path], Program]


def load_program(path: Path) -> Program:
    """The ``async def solve(image)`` of a Python file."""
    spec = importlib.util.spec_from_file_location(f"toolmesh_program_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    solve = getattr(module, "solve", None)
    if solve is None or not inspect.iscoroutinefunction(solve):
        raise ValueError(f"{path}: defines no `async def solve(image)`")
    return solve  # type: ignore[no-any-return]


def list_images(folder: Path) -> list[Path]:
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise ValueError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return images


def assign_images(tasks: int, images: int, seed: int | None = None) -> list[int]:
    """The image index of every task: ``i mod images``, or a seeded uniform draw.

    Args:
        tasks: Number of tasks.
        images: Number of images to choose from (at least one).
        seed: None for round-robin; otherwise the seed of the random assignment.

    Returns:
        One index in ``range(images)`` per task.
    """
    if images < 1:
        raise ValueError("at least one image is needed")
    if seed is None:
        return [task % images for task in range(tasks)]
    draw = random.Random(seed)
    return [draw.randrange(images) for _ in range(tasks)]


@dataclass(frozen=True)
class BatchConfig:
    program: Path
    images: Path
    tasks: int
    out: Path
    concurrency: int = 8
    resume: bool = False
    timeout: float | None = 120.0
    label: str = "toolmesh"
    solver: SolverFactory | None = None
    seed: int | None = None


@dataclass
class BatchSummary:
    total: int
    skipped: int = 0
    ok: int = 0
    failed: int = 0
    unfinished: list[int] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return not self.unfinished


def _error(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, RemoteError):
        return {"type": type(exc).__name__, "code": exc.code.name, "message": exc.details}
    return {"type": type(exc).__name__, "code": None, "message": str(exc)}


async def _run_task(
    task: int, image_path: Path, solve: Program, config: BatchConfig
) -> tuple[dict[str, Any] | None, list[CallRecord]]:
    """One task; returns its record, or None when it must be retried by a later run."""
    from PIL import Image

    calls: list[CallRecord] = []
    current_calls.set(calls)
    start = time.time()
    with (
        tracer.start_as_current_span(
            "toolmesh.task", attributes={"toolmesh.task": task, "toolmesh.image": image_path.name}
        ),
        Image.open(image_path) as image,
    ):
        image.load()
        try:
            result = await solve(image)
            error = None
        except RemoteError as exc:
            if exc.code in TRANSIENT:
                return None, calls
            result, error = None, _error(exc)
        except Exception as exc:  # the program's own failure is a result, not a crash
            result, error = None, _error(exc)
    end = time.time()
    return {
        "task": task,
        "image": image_path.name,
        "ok": error is None,
        "result": result_to_json(result, None, "result") if error is None else None,
        "error": error,
        "start": start,
        "end": end,
        "seconds": end - start,
        "label": config.label,
        "calls": [c.as_json() for c in calls],
    }, calls


async def run_batch(
    config: BatchConfig,
    transport: AsyncTransport,
    *,
    on_task: Callable[[dict[str, Any] | None], None] | None = None,
) -> BatchSummary:
    """Run every task not already in ``config.out``; see the module docstring."""
    solve = (config.solver or load_program)(config.program)
    images = list_images(config.images)
    assignment = assign_images(config.tasks, len(images), config.seed)
    results = ResultsFile(config.out, resume=config.resume)
    done = results.done_tasks() if config.resume else set()
    pending = [t for t in range(config.tasks) if t not in done]
    summary = BatchSummary(total=config.tasks, skipped=config.tasks - len(pending))
    queue: asyncio.Queue[int] = asyncio.Queue()
    for task in pending:
        queue.put_nowait(task)
    recording = RecordingTransport(transport)
    started = time.perf_counter()

    async def worker() -> None:
        while True:
            try:
                task = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            record, _ = await _run_task(task, images[assignment[task]], solve, config)
            if record is None:
                summary.unfinished.append(task)
            else:
                results.append(record)
                if record["ok"]:
                    summary.ok += 1
                else:
                    summary.failed += 1
            if on_task is not None:
                on_task(record)

    client = Client(transport=recording, timeout=config.timeout)
    try:
        with use_default_client(client):
            await asyncio.gather(*(worker() for _ in range(max(1, config.concurrency))))
    finally:
        results.close()
        close = getattr(solve, "aclose", None)
        if close is not None:
            await close()
        await client.aclose()
    summary.seconds = time.perf_counter() - started
    summary.unfinished.sort()
    return summary
