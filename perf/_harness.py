"""Shared benchmark plumbing: closed-loop load at a fixed concurrency, latency stats,
and writing results where the README shows them."""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "perf" / "results"
README = ROOT / "README.md"


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    throughput: float
    p50_ms: float
    p99_ms: float
    mean_ms: float


async def closed_loop(
    call: Callable[[], Awaitable[object]], *, concurrency: int, requests: int
) -> LoadResult:
    """``concurrency`` workers each issue calls back to back until ``requests`` are done."""
    latencies: list[float] = []
    errors = 0
    remaining = requests

    async def worker() -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            try:
                await call()
            except Exception:
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    latencies.sort()
    ms = [x * 1000 for x in latencies] or [float("nan")]
    return LoadResult(
        requests=len(latencies),
        errors=errors,
        seconds=seconds,
        throughput=len(latencies) / seconds,
        p50_ms=ms[len(ms) // 2],
        p99_ms=ms[min(len(ms) - 1, int(len(ms) * 0.99))],
        mean_ms=statistics.fmean(ms),
    )


async def alternate(
    direct: Callable[[], Awaitable[object]],
    gateway: Callable[[], Awaitable[object]],
    *,
    concurrency: int,
    requests: int,
    rounds: int,
) -> tuple[LoadResult, LoadResult]:
    """The best of ``rounds`` closed loops per side, the sides alternating so that drift on
    a noisy machine hits both alike."""
    directs: list[LoadResult] = []
    gateways: list[LoadResult] = []
    for _ in range(rounds):
        directs.append(await closed_loop(direct, concurrency=concurrency, requests=requests))
        gateways.append(await closed_loop(gateway, concurrency=concurrency, requests=requests))
    best = max(directs, key=lambda r: r.throughput), max(gateways, key=lambda r: r.throughput)
    return best


def write_results(name: str, payload: dict, table_markdown: str) -> Path:
    """JSON into perf/results, and the table between the README's markers for ``name``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=asdict) + "\n")
    (RESULTS / f"{name}.md").write_text(table_markdown + "\n")
    if README.exists():
        text = README.read_text()
        start, end = f"<!-- perf:{name}:start -->", f"<!-- perf:{name}:end -->"
        pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
        if pattern.search(text):
            README.write_text(pattern.sub(f"{start}\n{table_markdown}\n{end}", text))
    return path
