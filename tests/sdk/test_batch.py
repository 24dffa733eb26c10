"""The batch runner: crash-safe resume, retries across a Triton restart, baseline, report."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from toolmesh import GrpcTransport
from toolmesh.batch import BatchConfig, build_report, load_prices, read_results, run_batch
from toolmesh.batch._jsonl import ResultsFile
from toolmesh.data import STREET_FRAMES
from toolmesh_local.inprocess import InProcessTransport
from toolmesh_local.mesh import LocalMesh

TOOLMESH = str(Path(sys.executable).parent / "toolmesh")

# Cheap, deterministic work per task: a few real calls through the mesh.
PROGRAM = """
import asyncio
import numpy as np
import toolmesh

async def solve(image):
    small = image.resize((48, 36))
    grey, turned = await asyncio.gather(
        toolmesh.call("greyscale", image=small),
        toolmesh.call("rotate", image=small, angle=90),
    )
    return {"grey_sum": int(np.asarray(grey, dtype=np.int64).sum()), "turned": list(turned.size)}
"""


@pytest.fixture
def program(tmp_path: Path) -> Path:
    path = tmp_path / "program.py"
    path.write_text(PROGRAM)
    return path


def by_task(path: Path) -> dict[int, dict]:
    records = read_results(path)
    tasks = [r["task"] for r in records]
    assert len(tasks) == len(set(tasks)), "a task was written twice"
    return {r["task"]: r for r in records}


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TOOLMESH, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def run_trusted(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``toolmesh run --trusted``: PROGRAM is our own code (it imports NumPy)."""
    assert args[0] == "run"
    return run_cli("run", "--trusted", *args[1:], timeout=timeout)


def test_torn_last_line_is_dropped_on_resume(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"task": 0, "ok": true}\n{"task": 1, "ok": tr')
    results = ResultsFile(path, resume=True)
    assert results.done_tasks() == {0}
    results.append({"task": 1, "ok": True})
    results.close()
    assert [r["task"] for r in read_results(path)] == [0, 1]


def test_kill_then_resume_runs_every_task_exactly_once(
    address: str, program: Path, tmp_path: Path
) -> None:
    tasks = 40
    reference = tmp_path / "reference.jsonl"
    done = run_trusted(
        "run",
        str(program),
        "--images",
        str(STREET_FRAMES),
        "--tasks",
        str(tasks),
        "--concurrency",
        "4",
        "--out",
        str(reference),
        "--address",
        address,
    )
    assert done.returncode == 0, done.stderr

    out = tmp_path / "killed.jsonl"
    runner = subprocess.Popen(
        [TOOLMESH, "run", "--trusted", str(program), "--images", str(STREET_FRAMES), "--tasks", str(tasks),
         "--concurrency", "4", "--out", str(out), "--address", address],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while (not out.exists() or out.read_bytes().count(b"\n") < 8) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(runner.pid, signal.SIGKILL)  # a real kill, mid-run
    runner.wait(10)
    partial = len(by_task(out))
    assert 8 <= partial < tasks, f"kill came too late to test anything ({partial} written)"

    resumed = run_trusted(
        "run",
        str(program),
        "--images",
        str(STREET_FRAMES),
        "--tasks",
        str(tasks),
        "--concurrency",
        "4",
        "--out",
        str(out),
        "--resume",
        "--address",
        address,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"{partial} already done" in resumed.stdout
    final, expected = by_task(out), by_task(reference)
    assert sorted(final) == list(range(tasks))
    assert {t: r["result"] for t, r in final.items()} == {
        t: r["result"] for t, r in expected.items()
    }


def test_a_triton_restart_during_a_run_loses_no_task(program: Path, tmp_path: Path) -> None:
    mesh = LocalMesh(run_dir=tmp_path / "mesh", models=["greyscale", "rotate"])
    mesh.start(timeout=180)
    try:
        triton = mesh.tritons[0]

        config = BatchConfig(program=program, images=STREET_FRAMES, tasks=300,
                             out=tmp_path / "r.jsonl", concurrency=2)  # fmt: skip

        def restart() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and (
                not config.out.exists() or config.out.read_bytes().count(b"\n") < 10
            ):
                time.sleep(0.02)
            assert triton.process is not None
            os.kill(triton.process.pid, signal.SIGKILL)  # mid-run
            triton.process.wait(10)
            triton.process = None
            triton.start(timeout=120)

        async def main() -> object:
            transport = GrpcTransport(mesh.address, max_message_bytes=64 * 2**20)
            return await run_batch(config, transport)

        chaos = threading.Thread(target=restart)
        chaos.start()
        summary = asyncio.run(main())
        chaos.join()
    finally:
        mesh.stop()
    records = by_task(config.out)
    assert summary.unfinished == [] and summary.failed == 0
    assert sorted(records) == list(range(300))
    retried = [c for r in records.values() for c in r["calls"] if c["attempts"] > 1]
    assert retried, "the restart should have forced retries"
    assert all(r["ok"] for r in records.values())


def test_baseline_gives_the_same_results_as_the_mesh(
    address: str, program: Path, tmp_path: Path
) -> None:
    mesh_out, base_out = tmp_path / "mesh.jsonl", tmp_path / "baseline.jsonl"
    assert run_trusted("run", str(program), "--images", str(STREET_FRAMES), "--tasks", "6",
                   "--out", str(mesh_out), "--address", address).returncode == 0  # fmt: skip
    done = run_trusted("run", str(program), "--images", str(STREET_FRAMES), "--tasks", "6",
                   "--out", str(base_out), "--baseline")  # fmt: skip
    assert done.returncode == 0, done.stderr
    mesh_records, base_records = by_task(mesh_out), by_task(base_out)
    assert {t: r["result"] for t, r in base_records.items()} == {
        t: r["result"] for t, r in mesh_records.items()
    }
    assert all(r["label"] == "baseline" for r in base_records.values())
    # Serial: no two calls of the baseline overlap in time.
    calls = sorted((c["start"], c["end"]) for r in base_records.values() for c in r["calls"])
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(calls))


def test_program_errors_are_recorded_not_retried(tmp_path: Path) -> None:
    program = tmp_path / "bad.py"
    program.write_text(
        "import toolmesh\nasync def solve(image):\n"
        "    return await toolmesh.call('find', image=image, object_name='unicorn')\n"
    )
    config = BatchConfig(program=program, images=STREET_FRAMES, tasks=2, out=tmp_path / "r.jsonl")
    summary = asyncio.run(run_batch(config, InProcessTransport()))
    assert summary.failed == 2 and summary.unfinished == []
    for record in by_task(config.out).values():
        assert record["error"]["code"] == "INVALID_ARGUMENT"
        assert record["calls"][0]["attempts"] == 1


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def test_report_numbers_match_an_independent_computation(
    address: str, program: Path, tmp_path: Path
) -> None:
    out = tmp_path / "r.jsonl"
    assert run_trusted("run", str(program), "--images", str(STREET_FRAMES), "--tasks", "10",
                   "--out", str(out), "--address", address).returncode == 0  # fmt: skip
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    prices = load_prices()
    report = build_report(lines, {"a6000+a4000": 1, "cpu-2core": 2}, prices)

    grey = [
        c["end"] - c["start"] for r in lines for c in r["calls"] if c["function"] == "greyscale"
    ]
    stats = {f.name: f for f in report.functions}["greyscale"]
    assert stats.count == 10 == len(grey)
    assert stats.mean_s == pytest.approx(np.mean(grey))
    assert stats.stdev_s == pytest.approx(np.std(grey, ddof=1))
    assert stats.p50_s == pytest.approx(nearest_rank(grey, 50))
    assert stats.p99_s == pytest.approx(max(grey))
    wall = max(r["end"] for r in lines) - min(r["start"] for r in lines)
    assert report.wall_s == pytest.approx(wall)
    assert report.cost_usd == pytest.approx(wall / 3600 * (1.30 + 2 * prices["cpu-2core"]))
    assert report.projected_usd == pytest.approx(report.cost_usd / 10 * 100_000)

    shown = run_cli("report", str(out), "--node-type", "a100", "--plots", str(tmp_path / "plots"),
                    "--json", str(tmp_path / "report.json"))  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["cost_usd"] == pytest.approx(wall / 3600 * 2.20)
    for picture in ("timeline.png", "cost.png"):
        assert (tmp_path / "plots" / picture).read_bytes()[:4] == b"\x89PNG"
