"""The search finds the known optimum of small hand-built instances.

Each instance is small enough to solve by hand (the expected answer is derived in
the comments) and to enumerate completely, so the branch and bound is also
checked against simulating every composition.
"""

from __future__ import annotations

import itertools

import pytest

from toolmesh_planner.explain import explain_lines
from toolmesh_planner.profile import DeviceProfile, ModelProfile, ServiceTime
from toolmesh_planner.search import (
    Composition,
    NodeType,
    PlanError,
    PoolPlan,
    Target,
    evaluate,
    routes_for,
    search,
)
from toolmesh_planner.workload import Call, TaskShape, Workload


def device(name: str, parallelism: float, **seconds: float) -> DeviceProfile:
    return DeviceProfile(
        name,
        {
            m: ModelProfile(functions=(m,), service={1: ServiceTime.constant(s)})
            for m, s in seconds.items()
        },
        parallelism,
    )


def brute_force(workload: Workload, types: list[NodeType], target: Target, max_count: int):
    """Simulate every composition (each model on one type with 1–2 instances, 1..max nodes)."""
    by_name = {t.name: t for t in types}
    routes = routes_for(workload.functions(), types)
    models = sorted(set(routes.values()))
    options = [
        [(t.name, i) for t in types if m in t.profile.models for i in (1, 2)] for m in models
    ]
    best = None
    for choice in itertools.product(*options):
        pools: dict[str, list[tuple[str, int]]] = {}
        for m, (t, i) in zip(models, choice, strict=True):
            pools.setdefault(t, []).append((m, i))
        names = sorted(pools)
        for counts in itertools.product(range(1, max_count + 1), repeat=len(names)):
            composition = Composition(
                tuple(PoolPlan(t, n, tuple(pools[t])) for t, n in zip(names, counts, strict=True))
            )
            e = evaluate(composition, workload, by_name, routes, target, hop_s=0.0)
            if e.meets and (best is None or e.cost_usd < best.cost_usd - 1e-12):
                best = e
    return best


def test_two_cheap_nodes_beat_one_fast_dear_one() -> None:
    # 100 single-call tasks. big: 0.1 s a call, 3 USD/h; small: 0.4 s, 0.5 USD/h; one
    # instance at a time per node (parallelism 1), so a second instance buys nothing.
    # Deadline 25 s: small needs 100 × 0.4 / 25 = 1.6 → 2 nodes (20 s, 1 USD/h:
    # 0.00556 USD); big needs 1 node (10 s, 3 USD/h: 0.00833 USD). Two smalls win.
    workload = Workload((TaskShape((Call("f"),)),), tasks=100, concurrency=8)
    types = [
        NodeType("big", 3.0, device("big", 1.0, f=0.1)),
        NodeType("small", 0.5, device("small", 1.0, f=0.4)),
    ]
    plan = search(workload, types, Target(deadline_s=25), hop_s=0.0)
    assert plan.best is not None
    (pool,) = plan.best.composition.pools
    assert (pool.node_type, pool.count) == ("small", 2)
    assert plan.best.result.wall_s == pytest.approx(20.0, rel=0.01)
    assert plan.best.cost_usd == pytest.approx(1.0 * 20 / 3600, rel=0.01)
    # the one-small composition is cheaper per hour and misses: 40 s against 25
    cheaper = plan.next_cheaper()
    assert cheaper is not None
    assert cheaper.composition.pools[0].count == 1
    assert cheaper.result.wall_s == pytest.approx(40.0, rel=0.01)
    lines = explain_lines(plan, {t.name: t for t in types})
    assert any(line.startswith("why this mix: 2× small") for line in lines)
    # 40 s against 25 s allowed: 60 % over
    assert any(
        line.startswith("next-cheaper option: 1× small") and "missing the target by 60%" in line
        for line in lines
    ), lines
    # the dear type's work alone costs 1.5× the plan (3 USD/h × 10 s against 1 USD/h × 20 s)
    assert any(line.startswith("with big: at least") and "1.50×" in line for line in lines)


def test_a_tight_deadline_needs_the_fast_node() -> None:
    # small's call now takes 2.5 s: each of the 8 workers runs 100 / 8 tasks one after
    # another, 12.5 × 2.5 s > 12 s however many small nodes there are, so only big
    # (10 s on one node) can meet the deadline.
    workload = Workload((TaskShape((Call("f"),)),), tasks=100, concurrency=8)
    types = [
        NodeType("big", 3.0, device("big", 1.0, f=0.1)),
        NodeType("small", 0.5, device("small", 8.0, f=2.5)),
    ]
    plan = search(workload, types, Target(deadline_s=12), hop_s=0.0)
    assert plan.best is not None
    assert [(p.node_type, p.count) for p in plan.best.composition.pools] == [("big", 1)]


def test_each_model_goes_where_it_is_cheap() -> None:
    # two models; type "a" runs A fast and B slowly, "b" the reverse, same price: the
    # mixed composition (A on a, B on b) is the only one where one node each suffices.
    workload = Workload((TaskShape.chain(["A", "B"]),), tasks=60, concurrency=4)
    types = [
        NodeType("a", 1.0, device("a", 1.0, A=0.05, B=0.5)),
        NodeType("b", 1.0, device("b", 1.0, A=0.5, B=0.05)),
    ]
    target = Target(deadline_s=4.0)
    plan = search(workload, types, target, hop_s=0.0)
    assert plan.best is not None
    assignment = {(p.node_type, m) for p in plan.best.composition.pools for m, _ in p.models}
    assert assignment == {("a", "A"), ("b", "B")}
    assert [p.count for p in plan.best.composition.pools] == [1, 1]
    exhaustive = brute_force(workload, types, target, max_count=3)
    assert exhaustive is not None
    assert plan.best.cost_usd == pytest.approx(exhaustive.cost_usd, rel=1e-9)


def test_instances_pay_where_the_device_runs_them_in_parallel() -> None:
    # one node type of parallelism 2: two instances double a node's rate, so one node
    # with two instances (10 s) meets a 12 s deadline that one instance (20 s) misses.
    workload = Workload((TaskShape((Call("f"),)),), tasks=100, concurrency=8)
    types = [NodeType("gpu", 1.0, device("gpu", 2.0, f=0.2))]
    plan = search(workload, types, Target(deadline_s=12), hop_s=0.0)
    assert plan.best is not None
    assert plan.best.composition.pools == (PoolPlan("gpu", 1, (("f", 2),)),)


def test_branch_and_bound_agrees_with_exhaustive_search() -> None:
    workload = Workload(
        (TaskShape.rounds_of([["A"], ["B", "B", "C"]]), TaskShape.chain(["A", "C"])),
        tasks=40,
        concurrency=6,
    )
    types = [
        NodeType("x", 2.0, device("x", 2.0, A=0.05, B=0.08, C=0.1)),
        NodeType("y", 0.7, device("y", 1.0, A=0.2, B=0.1, C=0.3)),
    ]
    target = Target(tasks_per_hour=40 / 8 * 3600)  # 40 tasks in 8 s
    plan = search(workload, types, target, hop_s=0.0, max_simulations=500)
    exhaustive = brute_force(workload, types, target, max_count=3)
    assert plan.best is not None and exhaustive is not None
    assert plan.best.cost_usd == pytest.approx(exhaustive.cost_usd, rel=1e-9)


def test_no_feasible_composition_is_reported_not_invented() -> None:
    workload = Workload((TaskShape((Call("f"),)),), tasks=100, concurrency=1)
    types = [NodeType("slow", 1.0, device("slow", 1.0, f=1.0), max_nodes=2)]
    plan = search(workload, types, Target(deadline_s=10), hop_s=0.0)
    assert plan.best is None


def test_a_function_without_a_profile_is_named() -> None:
    workload = Workload((TaskShape((Call("caption"),)),), tasks=1, concurrency=1)
    with pytest.raises(PlanError, match="caption"):
        search(workload, [NodeType("t", 1.0, device("t", 1.0, f=1.0))], Target(deadline_s=10))


def test_target_needs_exactly_one_goal() -> None:
    with pytest.raises(PlanError):
        Target()
    with pytest.raises(PlanError):
        Target(deadline_s=1, tasks_per_hour=1)
    assert Target(tasks_per_hour=3600).wall_limit_s(10) == pytest.approx(10)


def test_a_pool_loads_no_more_than_its_node_holds() -> None:
    # A and B take 10 GB an instance. Without a memory limit both go to small, the cheap
    # type (one node, 0.5 USD/h). Its 16 GB hold one of them, and a composition has one
    # pool per node type, so with the limit: both on big (one node, 2.0 USD/h) or one on
    # each (2.5 USD/h) for the same 2 s: both on big.
    def with_memory(name: str) -> DeviceProfile:
        return DeviceProfile(
            name,
            {
                m: ModelProfile((m,), {1: ServiceTime.constant(0.1)}, memory_gb=10.0)
                for m in ("A", "B")
            },
            2.0,
        )

    workload = Workload((TaskShape.chain(["A", "B"]),), tasks=20, concurrency=2)
    unlimited = [
        NodeType("big", 2.0, with_memory("big")),
        NodeType("small", 0.5, with_memory("small")),
    ]
    plan = search(workload, unlimited, Target(deadline_s=10), hop_s=0.0)
    assert plan.best is not None
    assert [(p.node_type, p.count) for p in plan.best.composition.pools] == [("small", 1)]
    limited = [
        NodeType("big", 2.0, with_memory("big"), memory_gb=48.0),
        NodeType("small", 0.5, with_memory("small"), memory_gb=16.0),
    ]
    plan = search(workload, limited, Target(deadline_s=10), hop_s=0.0)
    assert plan.best is not None
    assert [(p.node_type, p.count) for p in plan.best.composition.pools] == [("big", 1)]
