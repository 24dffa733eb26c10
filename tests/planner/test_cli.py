"""`toolmesh profile` and `toolmesh plan` end to end, as a user runs them, on the suite's
real mesh: a tiny profile of two image functions, then plans from a recorded program
and from a results file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from toolmesh.data import STREET_FRAMES
from toolmesh_local.mesh import LocalMesh
from toolmesh_models.placement import parse_placement
from toolmesh_planner.profile import DeviceProfile, load_profile

TOOLMESH = str(Path(sys.executable).parent / "toolmesh")

PROGRAM = '''"""Greyscale, then a quarter turn."""

import toolmesh


async def solve(image):
    grey = await toolmesh.call("greyscale", image=image)
    turned = await toolmesh.call("rotate", image=grey, angle=90)
    return list(turned.size)
'''


def toolmesh(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TOOLMESH, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )


@pytest.fixture(scope="module")
def profiling(
    mesh: LocalMesh, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("profile") / "cpu.yaml"
    done = toolmesh(
        "profile",
        "--device-type", "cpu-2core",
        "--function", "greyscale",
        "--function", "rotate",
        "--function", "find",
        "--batch-sizes", "2",
        "--samples", "4",
        "--concurrency", "2",
        "--triton-url", mesh.triton.grpc_url,
        "--address", mesh.address,
        "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out, done


@pytest.fixture(scope="module")
def profile_file(profiling: tuple[Path, subprocess.CompletedProcess[str]]) -> Path:
    return profiling[0]


@pytest.fixture(scope="module")
def profiled(profile_file: Path) -> DeviceProfile:
    return load_profile(profile_file)


def test_profile_holds_each_model_measured(
    profiled: DeviceProfile, profiling: tuple[Path, subprocess.CompletedProcess[str]]
) -> None:
    assert profiled.device_type == "cpu-2core"
    assert set(profiled.models) == {"greyscale", "rotate", "find"}
    # the suite's mesh has the default placement: two find instances, one of the others,
    # and find batched only on GPUs, so on this CPU a batch of 2 is said not to be profiled
    assert profiled.models["find"].instances == 2
    assert profiled.models["find"].max_batch_size > 0
    assert set(profiled.models["find"].service) == {1}
    assert "find: batch 2 not profiled" in profiling[1].stderr
    for name in ("greyscale", "rotate"):
        model = profiled.models[name]
        assert model.functions == (name,)
        assert model.instances == 1
        assert set(model.service) == {1}
    for model in profiled.models.values():
        assert model.kind == "KIND_CPU"
        assert 0 < model.service[1].quantiles[0] <= model.service[1].quantiles[-1] < 5
        assert set(model.concurrency) == {1, 2}
        assert model.hop_s >= 0
    assert profiled.machine["triton_url"]
    assert profiled.parallelism > 0


def test_plan_from_a_recorded_program_writes_a_placement_that_parses(
    mesh: LocalMesh, profile_file: Path, tmp_path: Path
) -> None:
    program = tmp_path / "grey_turn.py"
    program.write_text(PROGRAM)
    out = tmp_path / "plan"
    done = toolmesh(
        "plan",
        "--profile", str(profile_file),
        "--program", str(program),
        "--images", str(STREET_FRAMES),
        "--sample-tasks", "2",
        "--tasks", "40",
        "--concurrency", "2",
        "--deadline", "600",
        "--address", mesh.address,
        "--out", str(out),
        "--explain",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "plan: 1× cpu-2core" in done.stdout
    assert "why this mix" in done.stdout
    placement = parse_placement(yaml.safe_load((out / "placement.yaml").read_text()))
    assert set(placement.pools) == {"cpu-2core"}
    assert set(placement.pools["cpu-2core"].models) == {"greyscale", "rotate"}
    plan = json.loads((out / "plan.json").read_text())
    assert plan["meets_target"] is True
    assert plan["tasks"] == 40
    assert 0 < plan["predicted_wall_s"] <= 600
    assert (out / "pool-cpu-2core" / "pool.yaml").is_file()


def _record(task: int, t0: float, grey: float, turn: float) -> dict:
    """A results-file record of one task: greyscale, then rotate as soon as it answers."""
    return {
        "task": task,
        "ok": True,
        "start": t0,
        "end": t0 + grey + turn,
        "calls": [
            {"function": "greyscale", "start": t0, "end": t0 + grey, "seconds": grey},
            {"function": "rotate", "start": t0 + grey, "end": t0 + grey + turn, "seconds": turn},
        ],
    }


def test_plan_from_a_results_file_predicts_the_chain(
    profiled: DeviceProfile, profile_file: Path, tmp_path: Path
) -> None:
    results = tmp_path / "run.jsonl"
    records = [_record(k, 1000.0 + k, 0.01, 0.01) for k in range(5)]
    results.write_text("".join(json.dumps(r) + "\n" for r in records))
    # one task at a time, no calibration, no hop: each task is the two profiled means
    tasks = 300
    expected = tasks * sum(profiled.models[m].batch_time(1) for m in ("greyscale", "rotate"))
    out = tmp_path / "plan"
    done = toolmesh(
        "plan",
        "--profile", str(profile_file),
        "--results", str(results),
        "--tasks", str(tasks),
        "--concurrency", "1",
        "--tasks-per-hour", "1",
        "--no-calibrate",
        "--hop-ms", "0",
        "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    plan = json.loads((out / "plan.json").read_text())
    assert plan["predicted_wall_s"] == pytest.approx(expected, rel=0.1)
    assert plan["usd_per_hour"] == pytest.approx(0.0835)  # the bundled price of cpu-2core


def test_plan_says_when_nothing_meets_the_target(profile_file: Path, tmp_path: Path) -> None:
    results = tmp_path / "run.jsonl"
    results.write_text(json.dumps(_record(0, 1000.0, 0.01, 0.01)) + "\n")
    done = toolmesh(
        "plan", "--profile", str(profile_file), "--results", str(results),
        "--tasks", "1000", "--concurrency", "1", "--deadline", "0.5",
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("error: no composition of cpu-2core")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--results", "missing.jsonl", "--deadline", "1"], "missing.jsonl: no such file"),
        (["--deadline", "1"], "--results FILE or --program FILE"),
        (["--results", "x", "--deadline", "1", "--tasks-per-hour", "2"], "exactly one target"),
        (["--results", "x", "--deadline", "1", "--node-type", "a100"], "no profile for node type"),
    ],
)
def test_plan_usage_mistakes_are_one_line(
    profile_file: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "x").write_text(json.dumps(_record(0, 1000.0, 0.01, 0.01)) + "\n")
    done = subprocess.run(
        [TOOLMESH, "plan", "--profile", str(profile_file), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], lines
