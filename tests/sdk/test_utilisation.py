"""CPU per process group, sampled from real processes, and the summary ``toolmesh report`` prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from toolmesh.batch import UtilisationSampler, load_utilisation, summarise_utilisation
from toolmesh.batch._utilisation import IDLE_PERCENT

BUSY = "import time\nend = time.time() + 30\nwhile time.time() < end: pass\n"
IDLE = "import time\ntime.sleep(30)\n"
#: A parent that sleeps while its child spins: the child's CPU must count for the parent's group.
PARENT_OF_BUSY = (
    "import subprocess, sys, time\n"
    f"child = subprocess.Popen([sys.executable, '-c', {BUSY!r}])\n"
    "time.sleep(30)\nchild.kill()\n"
)


@pytest.fixture
def processes() -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    started = {
        name: subprocess.Popen([sys.executable, "-c", code])
        for name, code in {"busy": BUSY, "idle": IDLE, "parent": PARENT_OF_BUSY}.items()
    }
    try:
        yield started
    finally:
        for process in started.values():
            process.kill()
            process.wait()


def test_groups_are_measured_with_their_descendants(
    processes: dict[str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    path = tmp_path / "util.jsonl"
    groups = {name: [p.pid] for name, p in processes.items()}
    time.sleep(0.5)  # the parent's child exists
    with UtilisationSampler(path, groups, interval=0.2, gpus=False) as sampler:
        time.sleep(2.5)
    samples = load_utilisation(path)
    assert len(samples) == sampler.samples >= 5
    assert all(set(s["cpu"]) == {"busy", "idle", "parent"} for s in samples)
    summary = summarise_utilisation(samples)
    by_name = {g.name: g for g in summary.groups}
    # a sleeping process uses next to nothing; a spinning one, even on cores shared with
    # other work, a good share of one
    assert by_name["idle"].mean < 3
    assert by_name["busy"].mean > 10
    assert by_name["parent"].mean > 10, "the parent group lost its child's CPU"
    assert by_name["idle"].idle_fraction == 1.0
    assert 0 < summary.machine.mean <= 100
    assert summary.gpus == []  # gpus=False: nothing sampled, nothing reported


def test_a_group_root_below_another_group_is_not_counted_twice(
    processes: dict[str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    """The runner starts Triton as its child: ``client`` must not count Triton's CPU."""
    parent = processes["parent"]
    time.sleep(0.5)
    import psutil

    (child,) = psutil.Process(parent.pid).children()
    path = tmp_path / "util.jsonl"
    with UtilisationSampler(path, {"parent": [parent.pid], "child": [child.pid]}, interval=0.2):
        time.sleep(2.0)
    summary = summarise_utilisation(load_utilisation(path))
    by_name = {g.name: g for g in summary.groups}
    assert by_name["child"].mean > 10
    assert by_name["parent"].mean < 3


def test_summary_matches_an_independent_computation(tmp_path: Path) -> None:
    rows = [
        {"t": 100.0, "cpu": {"a": 0.0, "b": 150.0}, "machine": 80.0, "cores": 2},
        {"t": 100.5, "cpu": {"a": 4.9, "b": 120.0}, "machine": 60.0, "cores": 2},
        {"t": 101.0, "cpu": {"a": 60.0, "b": 0.0}, "machine": 30.0, "cores": 2,
         "gpus": [{"index": 0, "util": 0.0, "mem_used_mb": 100.0, "mem_total_mb": 1000.0}]},
        {"t": 101.5, "cpu": {"a": 20.0}, "machine": 10.0, "cores": 2,
         "gpus": [{"index": 0, "util": 90.0, "mem_used_mb": 300.0, "mem_total_mb": 1000.0}]},
    ]  # fmt: skip
    path = tmp_path / "u.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"t": 10')  # torn tail
    summary = summarise_utilisation(load_utilisation(path))
    assert summary.samples == 4
    assert summary.seconds == pytest.approx(1.5)
    a, b = summary.groups
    assert (a.name, b.name) == ("a", "b")
    assert a.mean == pytest.approx((0 + 4.9 + 60 + 20) / 4)
    assert a.peak == 60.0
    assert a.idle_fraction == pytest.approx(2 / 4)  # 0.0 and 4.9 are under 5 %
    assert b.mean == pytest.approx((150 + 120 + 0 + 0) / 4)  # a group absent from a sample: 0
    assert b.idle_fraction == pytest.approx(2 / 4)
    assert summary.machine.mean == pytest.approx(45.0)
    (gpu,) = summary.gpus
    assert gpu.mean == pytest.approx(45.0) and gpu.idle_fraction == pytest.approx(0.5)
    assert summary.gpu_memory_mb == [300.0]
    assert IDLE_PERCENT == 5.0


def test_no_samples_is_an_error() -> None:
    with pytest.raises(ValueError, match="no utilisation samples"):
        summarise_utilisation([])


def test_toolmesh_run_samples_utilisation_and_report_shows_it(tmp_path: Path) -> None:
    """``toolmesh run --utilisation`` on the in-process baseline, then ``report --utilisation``."""
    program = tmp_path / "grey.py"
    program.write_text(
        "import toolmesh\n\nasync def solve(image):\n"
        "    grey = await toolmesh.call('greyscale', image=image)\n    return grey.size\n"
    )
    images = tmp_path / "images"
    images.mkdir()
    from toolmesh.data import STREET_FRAMES

    for frame in sorted(STREET_FRAMES.glob("*.jpg"))[:2]:
        (images / frame.name).write_bytes(frame.read_bytes())
    toolmesh_cli = str(Path(sys.executable).with_name("toolmesh"))
    idle = subprocess.Popen([sys.executable, "-c", IDLE])
    try:
        done = subprocess.run(
            [toolmesh_cli, "run", str(program), "--baseline", "--images", str(images),
             "--tasks", "40", "--out", str(tmp_path / "r.jsonl"),
             "--utilisation", str(tmp_path / "u.jsonl"), "--watch", f"sleeper={idle.pid}"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    finally:
        idle.kill()
        idle.wait()
    assert done.returncode == 0, done.stderr
    samples = load_utilisation(tmp_path / "u.jsonl")
    assert samples and all(set(s["cpu"]) == {"client", "sleeper"} for s in samples)
    shown = subprocess.run(
        [toolmesh_cli, "report", str(tmp_path / "r.jsonl"), "--utilisation",
         str(tmp_path / "u.jsonl"), "--json", str(tmp_path / "report.json")],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "sleeper (of a core)" in shown.stdout and "idle (< 5 %)" in shown.stdout
    saved = json.loads((tmp_path / "report.json").read_text())["utilisation"]
    sleeper = next(g for g in saved["groups"] if g["name"] == "sleeper")
    values = [s["cpu"]["sleeper"] for s in samples]
    assert sleeper["mean"] == pytest.approx(sum(values) / len(values))
    assert sleeper["idle_fraction"] == pytest.approx(sum(v < 5 for v in values) / len(values))


def test_watch_must_name_a_group_and_pids(tmp_path: Path) -> None:
    toolmesh_cli = str(Path(sys.executable).with_name("toolmesh"))
    from toolmesh.data import STREET_FRAMES, STREET_REPORT

    done = subprocess.run(
        [toolmesh_cli, "run", str(STREET_REPORT), "--trusted", "--images", str(STREET_FRAMES),
         "--utilisation", str(tmp_path / "u.jsonl"), "--watch", "triton=abc"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "NAME=PID" in done.stderr


def test_utilisation_plot_draws_gpu_panels_when_sampled(tmp_path: Path) -> None:
    from toolmesh.batch._plots import plot_utilisation

    gpu = {"index": 0, "util": 50.0, "mem_used_mb": 1.0, "mem_total_mb": 2.0}
    with_gpu = [{"t": float(t), "cpu": {"triton": 80.0}, "machine": 40.0, "cores": 2,
                 "gpus": [gpu]} for t in range(5)]  # fmt: skip
    without = [{"t": float(t), "cpu": {"client": 99.0}, "machine": 50.0, "cores": 2}
               for t in range(5)]  # fmt: skip
    path = plot_utilisation({"mesh": with_gpu, "baseline": without}, tmp_path / "u.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
