"""Call graphs and input scales recovered from results-file records with known structure."""

from __future__ import annotations

import pytest

from toolmesh_planner.profile import DeviceProfile, ModelProfile, ServiceTime
from toolmesh_planner.workload import (
    TaskShape,
    Workload,
    WorkloadError,
    input_scales,
    shapes_from_results,
)


def call(function: str, start: float, end: float) -> dict:
    return {"function": function, "start": start, "end": end, "seconds": end - start}


def street_like(t0: float) -> dict:
    """Two detections at once; 5 ms of client work; three crops' resizes at once."""
    calls = [
        call("find", t0, t0 + 0.050),
        call("find", t0 + 0.0002, t0 + 0.060),
        call("resize", t0 + 0.065, t0 + 0.070),
        call("resize", t0 + 0.065, t0 + 0.075),
        call("resize", t0 + 0.065, t0 + 0.080),
    ]
    return {"task": 0, "ok": True, "start": t0, "end": t0 + 0.082, "calls": calls}


def test_rounds_are_recovered_with_the_clients_delays() -> None:
    (shape,) = shapes_from_results([street_like(100.0)])
    assert [c.function for c in shape.calls] == ["find", "find", "resize", "resize", "resize"]
    assert shape.calls[0].deps == () and shape.calls[1].deps == ()
    for resize in shape.calls[2:]:
        assert set(resize.deps) == {0, 1}
        assert resize.delay_s == pytest.approx(0.005)
    assert shape.rounds == 2
    assert shape.tail_s == pytest.approx(0.002)


def test_implied_dependencies_are_dropped() -> None:
    chain = {
        "ok": True,
        "start": 0.0,
        "end": 0.3,
        "calls": [call("a", 0.0, 0.1), call("b", 0.1, 0.2), call("c", 0.2, 0.3)],
    }
    (shape,) = shapes_from_results([chain])
    assert [c.deps for c in shape.calls] == [(), (0,), (1,)]
    assert shape == TaskShape.chain(["a", "b", "c"])


def test_failed_tasks_and_empty_files_are_not_workloads() -> None:
    failed = {**street_like(0.0), "ok": False}
    assert len(shapes_from_results([failed, street_like(1.0)])) == 1
    with pytest.raises(WorkloadError):
        shapes_from_results([failed])
    with pytest.raises(WorkloadError):
        Workload((), tasks=1, concurrency=1)


def test_input_scales_divide_out_hop_contention_and_queueing() -> None:
    # profile: find 0.1 s mean (2 instances), resize 0.02 s (1 instance); hops 2 ms for
    # resize (the smallest: the base) and 4 ms for find; parallelism 1
    profile = DeviceProfile(
        "cpu",
        {
            "find": ModelProfile(("find",), {1: ServiceTime.constant(0.1)}, 2, hop_s=0.004),
            "resize": ModelProfile(("resize",), {1: ServiceTime.constant(0.02)}, 1, hop_s=0.002),
        },
        parallelism=1.0,
    )
    t0 = 0.0
    record = {
        "ok": True,
        "start": t0,
        "end": 1.0,
        "calls": [
            # two finds side by side on a device of parallelism 1: each slowed 2×;
            # 0.002 + s × (0.002 + 0.1) = 0.002 + 2 × 0.0510 s  →  s = 0.5
            call("find", t0, t0 + 0.002 + 2 * 0.051),
            call("find", t0, t0 + 0.002 + 2 * 0.051),
            # resizes of one instance: the first alone takes 0.002 + s × 0.02 with s = 0.25;
            # the second queued behind it (left out), so its longer time does not count
            call("resize", 0.5, 0.5 + 0.007),
            call("resize", 0.5, 0.5 + 0.014),
        ],
    }
    scales, hops = input_scales([record], profile, hop_s=0.0)
    assert scales["find"] == pytest.approx(0.5)
    assert hops["find"] == pytest.approx(0.002 + 0.5 * 0.002)
    assert scales["resize"] == pytest.approx(0.25)
    assert hops["resize"] == pytest.approx(0.002)


def test_calls_slower_than_the_profile_spend_the_difference_outside_triton() -> None:
    # profiled 0.05 s with no hop; the workload's calls take 0.08 s: the scale stops at 1
    # (the profile's sample is the costliest input) and 0.03 s joins the hop
    profile = DeviceProfile(
        "cpu", {"find": ModelProfile(("find",), {1: ServiceTime.constant(0.05)})}, 1.0
    )
    record = {"ok": True, "start": 0.0, "end": 0.08, "calls": [call("find", 0.0, 0.08)]}
    scales, hops = input_scales([record], profile, hop_s=0.0)
    assert scales["find"] == pytest.approx(1.0)
    assert hops["find"] == pytest.approx(0.03)
    scales, hops = input_scales([record], profile, hop_s=0.0, max_scale=2.0)
    assert scales["find"] == pytest.approx(1.6)
    assert hops["find"] == pytest.approx(0.0)


def test_only_calls_that_ran_alone_show_work_outside_triton() -> None:
    # the same two 0.08 s calls side by side (2 instances, parallelism 2: no contention
    # the simulator would model): they were also slowed by each other's client and
    # gateway work, so none of their excess joins the hop
    profile = DeviceProfile(
        "cpu", {"find": ModelProfile(("find",), {1: ServiceTime.constant(0.05)}, 2)}, 2.0
    )
    record = {
        "ok": True,
        "start": 0.0,
        "end": 0.08,
        "calls": [call("find", 0.0, 0.08), call("find", 0.0, 0.08)],
    }
    scales, hops = input_scales([record], profile, hop_s=0.001)
    assert scales["find"] == pytest.approx(1.0)
    assert hops["find"] == pytest.approx(0.001)
