"""The search: the cheapest composition of node types, counts and instance groups.

A composition gives each model of the workload one node type (its pool) and an
instance count; each pool gets a node count. The space is the product of those
choices, too large to simulate whole, so the search is branch and bound:

1. For every assignment of models to (node type, instances), a lower bound on
   the run's cost from the work alone: a pool of ``n`` nodes finishes no sooner
   than its busiest model's work over ``n × instances`` and its total work over
   ``n × parallelism``; cost is price × wall, so ``Σ price × work / capacity``
   bounds it whatever ``n`` is. The same arithmetic gives the fewest nodes per
   pool that could meet the target.
2. Assignments are simulated cheapest bound first, starting at those counts; a
   composition that misses the target gets a node more in its busiest pool
   (more at once when it misses by far) until it meets it or hits the cap.
3. The search stops when the next bound is no cheaper than the best composition
   found: nothing left could beat it.

Cost is the run's: nodes' hourly price × predicted wall time, the way the batch
report (``toolmesh report``) charges a run.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from toolmesh_planner.profile import DeviceProfile, ModelProfile
from toolmesh_planner.simulate import ModelSetup, NodeSetup, SimResult, simulate
from toolmesh_planner.workload import Workload

__all__ = [
    "Composition",
    "Evaluation",
    "NodeType",
    "PlanError",
    "PlanResult",
    "PoolPlan",
    "Target",
    "build_nodes",
    "evaluate",
    "routes_for",
    "search",
]

#: Assignments beyond this many are not enumerated (instance options are cut first).
MAX_ASSIGNMENTS = 200_000


class PlanError(ValueError):
    """A plan that cannot be made: a function no profile serves, no feasible node type."""


@dataclass(frozen=True)
class NodeType:
    """A node type one can buy: its price, its device's profile, how many at most."""

    name: str
    usd_per_hour: float
    profile: DeviceProfile
    max_nodes: int = 8
    gpu_product: str | None = None
    memory_gb: float | None = None


@dataclass(frozen=True)
class Target:
    """Finish within ``deadline_s``, or sustain ``tasks_per_hour`` (one of them)."""

    deadline_s: float | None = None
    tasks_per_hour: float | None = None

    def __post_init__(self) -> None:
        if (self.deadline_s is None) == (self.tasks_per_hour is None):
            raise PlanError("give exactly one target: a deadline or tasks per hour")
        value = self.deadline_s if self.deadline_s is not None else self.tasks_per_hour
        if value is None or not value > 0:
            raise PlanError("the target must be positive")

    def wall_limit_s(self, tasks: int) -> float:
        """The longest wall time for ``tasks`` tasks that meets the target."""
        if self.deadline_s is not None:
            return self.deadline_s
        assert self.tasks_per_hour is not None
        return tasks / self.tasks_per_hour * 3600

    def describe(self) -> str:
        if self.deadline_s is not None:
            return f"deadline {self.deadline_s:g} s"
        return f"{self.tasks_per_hour:g} tasks/hour"


@dataclass(frozen=True)
class PoolPlan:
    """One pool: ``count`` nodes of ``node_type``, each loading ``models`` (model → instances)."""

    node_type: str
    count: int
    models: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Composition:
    pools: tuple[PoolPlan, ...]

    def usd_per_hour(self, types: Mapping[str, NodeType]) -> float:
        return sum(types[p.node_type].usd_per_hour * p.count for p in self.pools)

    def describe(self) -> str:
        parts = []
        for p in self.pools:
            models = ", ".join(f"{m}×{i}" for m, i in p.models)
            parts.append(f"{p.count}× {p.node_type} [{models}]")
        return " + ".join(parts)


@dataclass
class Evaluation:
    composition: Composition
    result: SimResult
    usd_per_hour: float
    limit_s: float

    @property
    def cost_usd(self) -> float:
        return self.usd_per_hour * self.result.wall_s / 3600

    @property
    def meets(self) -> bool:
        return self.result.wall_s <= self.limit_s


@dataclass
class PlanResult:
    best: Evaluation | None
    evaluated: list[Evaluation]
    target: Target
    workload: Workload
    routes: dict[str, str]
    pruned: int = 0
    assignments: int = 0
    notes: list[str] = field(default_factory=list)
    #: the cheapest cost bound of each mix of node types ("a4000 + a6000"), simulated or not
    bounds: dict[str, float] = field(default_factory=dict)

    def next_cheaper(self) -> Evaluation | None:
        """The dearest composition cheaper per hour than the best that misses the target."""
        if self.best is None:
            return None
        cheaper = [
            e
            for e in self.evaluated
            if not e.meets and e.usd_per_hour < self.best.usd_per_hour - 1e-9
        ]
        return max(cheaper, key=lambda e: (e.usd_per_hour, -e.result.wall_s), default=None)


def routes_for(functions: set[str], types: Sequence[NodeType]) -> dict[str, str]:
    """Each function's model, from the profiles (every device serves it with the same one)."""
    routes: dict[str, str] = {}
    for function in sorted(functions):
        for node_type in types:
            model = node_type.profile.model_of(function)
            if model is not None:
                routes[function] = model
                break
        else:
            raise PlanError(
                f"no profile has the model of function {function!r}; "
                f"profile it (toolmesh profile --function {function})"
            )
    return routes


def _max_batch(model: ModelProfile) -> int:
    """Dynamic batching where the instances are GPUs (``batching: gpu`` in the placement)."""
    return max(1, model.max_batch_size) if model.kind == "KIND_GPU" else 1


def build_nodes(composition: Composition, types: Mapping[str, NodeType]) -> list[NodeSetup]:
    """The simulator's nodes for a composition: each pool's node, ``count`` times."""
    nodes: list[NodeSetup] = []
    for pool in composition.pools:
        node_type = types[pool.node_type]
        profile = node_type.profile
        setups = {
            m: ModelSetup(profile.models[m], i, _max_batch(profile.models[m]))
            for m, i in pool.models
        }
        nodes.extend(
            NodeSetup(pool.node_type, setups, profile.parallelism) for _ in range(pool.count)
        )
    return nodes


def evaluate(
    composition: Composition,
    workload: Workload,
    types: Mapping[str, NodeType],
    routes: Mapping[str, str],
    target: Target,
    *,
    hop_s: float,
    colocated_gateway: bool = False,
    seed: int = 0,
) -> Evaluation:
    """Simulate one composition."""
    result = simulate(
        workload,
        build_nodes(composition, types),
        routes,
        hop_s=hop_s,
        colocated_gateway=colocated_gateway,
        seed=seed,
    )
    return Evaluation(
        composition,
        result,
        composition.usd_per_hour(types),
        target.wall_limit_s(workload.tasks),
    )


@dataclass(frozen=True)
class _Candidate:
    assignment: tuple[tuple[str, str, int], ...]  # (model, node type, instances)
    counts: tuple[tuple[str, int], ...]  # fewest nodes per pool that could meet the target
    cost_bound: float


def _critical_path_s(
    workload: Workload, routes: Mapping[str, str], service: dict[str, float], hop_s: float
) -> float:
    """Mean over task shapes of the longest path (delays, hops, mean service at batch 1)."""
    total = 0.0
    for shape in workload.shapes:
        finish: list[float] = []
        for call in shape.calls:
            ready = max((finish[d] for d in call.deps), default=0.0)
            scale = workload.scales.get(call.function, 1.0)
            hop = workload.hops.get(call.function, hop_s)
            finish.append(ready + call.delay_s + hop + service[routes[call.function]] * scale)
        total += max(finish, default=0.0) + shape.tail_s
    return total / len(workload.shapes)


def _candidates(
    workload: Workload,
    types: Sequence[NodeType],
    routes: Mapping[str, str],
    target: Target,
    instance_options: Sequence[int],
    hop_s: float,
) -> tuple[list[_Candidate], int]:
    per_task = workload.calls_per_task()
    calls: dict[str, float] = {}
    for function, n in per_task.items():
        # calls weighted by their inputs' cost against the profile's (Workload.scales)
        weight = n * workload.tasks * workload.scales.get(function, 1.0)
        calls[routes[function]] = calls.get(routes[function], 0.0) + weight
    models = sorted(calls)
    options: list[list[tuple[str, int]]] = []
    for model in models:
        choices = [
            (t.name, i) for t in types if model in t.profile.models for i in instance_options
        ]
        if not choices:
            raise PlanError(f"no node type has a profile of model {model!r}")
        options.append(choices)
    if math.prod(len(o) for o in options) > MAX_ASSIGNMENTS:
        options = [[(t, i) for t, i in o if i == instance_options[0]] for o in options]
    by_name = {t.name: t for t in types}
    limit = target.wall_limit_s(workload.tasks)
    candidates: list[_Candidate] = []
    assignments = 0
    for choice in itertools.product(*options):
        assignments += 1
        pools: dict[str, list[tuple[str, int]]] = {}
        for model, (type_name, instances) in zip(models, choice, strict=True):
            pools.setdefault(type_name, []).append((model, instances))
        service1: dict[str, float] = {}
        counts: list[tuple[str, int]] = []
        bound = 0.0
        feasible = True
        for type_name, members in pools.items():
            node_type = by_name[type_name]
            profile = node_type.profile
            if node_type.memory_gb is not None and node_type.memory_gb < sum(
                profile.models[m].memory_gb * i for m, i in members
            ):
                feasible = False  # the pool's instances do not fit in one node
                break
            work = {
                m: calls[m] * profile.models[m].best_time_per_item(_max_batch(profile.models[m]))
                for m, _ in members
            }
            for m, _ in members:
                service1[m] = profile.models[m].batch_time(1)
            parallel = min(profile.parallelism, sum(i for _, i in members))
            node_seconds = max(sum(work.values()) / parallel, max(work[m] / i for m, i in members))
            need = max(1, math.ceil(node_seconds / limit - 1e-9))
            if need > node_type.max_nodes:
                feasible = False
                break
            counts.append((type_name, need))
            bound += node_type.usd_per_hour * node_seconds / 3600
        if not feasible:
            continue
        # each of the `concurrency` workers runs its share of tasks one after another
        wall_floor = (
            _critical_path_s(workload, routes, service1, hop_s)
            * workload.tasks
            / min(workload.concurrency, workload.tasks)
        )
        if wall_floor > limit * 1.05:  # no node count shortens a task's own path
            continue
        hourly = sum(by_name[t].usd_per_hour * n for t, n in counts)
        bound = max(bound, hourly * wall_floor / 3600)
        candidates.append(
            _Candidate(
                tuple((m, t, i) for m, (t, i) in zip(models, choice, strict=True)),
                tuple(sorted(counts)),
                bound,
            )
        )
    # cheapest bound first; among equals, fewer pools and fewer instances
    candidates.sort(
        key=lambda c: (
            c.cost_bound,
            len(c.counts),
            sum(i for _, _, i in c.assignment),
            c.assignment,
        )
    )
    return candidates, assignments


def _composition(candidate: _Candidate, counts: Mapping[str, int]) -> Composition:
    pools: dict[str, list[tuple[str, int]]] = {}
    for model, type_name, instances in candidate.assignment:
        pools.setdefault(type_name, []).append((model, instances))
    return Composition(
        tuple(
            PoolPlan(type_name, counts[type_name], tuple(members))
            for type_name, members in sorted(pools.items())
        )
    )


def search(
    workload: Workload,
    types: Sequence[NodeType],
    target: Target,
    *,
    hop_s: float = 0.002,
    instance_options: Sequence[int] = (1, 2),
    max_simulations: int = 80,
    colocated_gateway: bool = False,
    seed: int = 0,
) -> PlanResult:
    """The cheapest composition meeting ``target``, and every one simulated on the way.

    Raises:
        PlanError: a function without a profile, or no node types.
    """
    if not types:
        raise PlanError("no node types to plan with")
    routes = routes_for(workload.functions(), types)
    by_name = {t.name: t for t in types}
    candidates, assignments = _candidates(workload, types, routes, target, instance_options, hop_s)
    plan = PlanResult(None, [], target, workload, routes, assignments=assignments)
    for candidate in candidates:
        mix = " + ".join(sorted({t for _, t, _ in candidate.assignment}))
        plan.bounds[mix] = min(plan.bounds.get(mix, math.inf), candidate.cost_bound)
    limit = target.wall_limit_s(workload.tasks)
    simulations = 0
    for index, candidate in enumerate(candidates):
        if plan.best is not None and candidate.cost_bound >= plan.best.cost_usd:
            plan.pruned = len(candidates) - index
            break
        if simulations >= max_simulations:
            plan.notes.append(
                f"stopped after {max_simulations} simulations; "
                f"{len(candidates) - index} compositions not tried"
            )
            break
        counts = dict(candidate.counts)
        while simulations < max_simulations:
            evaluation = evaluate(
                _composition(candidate, counts),
                workload,
                by_name,
                routes,
                target,
                hop_s=hop_s,
                colocated_gateway=colocated_gateway,
                seed=seed,
            )
            simulations += 1
            plan.evaluated.append(evaluation)
            if evaluation.meets:
                # a saving under 1 % is simulation noise: keep the leaner composition
                if plan.best is None or evaluation.cost_usd < plan.best.cost_usd * 0.99:
                    plan.best = evaluation
                break
            busiest = max(
                counts,
                key=lambda t: (
                    evaluation.result.device_utilisation.get(t, 0.0)
                    + max(evaluation.result.utilisation.get(t, {}).values(), default=0.0)
                ),
            )
            miss = evaluation.result.wall_s / limit
            step = max(1, math.ceil(counts[busiest] * (miss - 1))) if miss > 1.5 else 1
            if counts[busiest] + step > by_name[busiest].max_nodes:
                if counts[busiest] >= by_name[busiest].max_nodes:
                    break
                step = by_name[busiest].max_nodes - counts[busiest]
            counts[busiest] += step
    if plan.best is not None:
        _try_one_node_fewer(
            plan, by_name, hop_s=hop_s, colocated_gateway=colocated_gateway, seed=seed
        )
    return plan


def _try_one_node_fewer(
    plan: PlanResult,
    types: Mapping[str, NodeType],
    *,
    hop_s: float,
    colocated_gateway: bool,
    seed: int,
) -> None:
    """Simulate the plan with one node fewer in each pool, so ``--explain`` can say what
    the nearest cheaper composition misses by (the search may have started above it)."""
    assert plan.best is not None
    seen = {e.composition for e in plan.evaluated}
    pools = plan.best.composition.pools
    for index, pool in enumerate(pools):
        if pool.count < 2:
            continue
        fewer = Composition(
            (
                *pools[:index],
                PoolPlan(pool.node_type, pool.count - 1, pool.models),
                *pools[index + 1 :],
            )
        )
        if fewer not in seen:
            plan.evaluated.append(
                evaluate(
                    fewer,
                    plan.workload,
                    types,
                    plan.routes,
                    plan.target,
                    hop_s=hop_s,
                    colocated_gateway=colocated_gateway,
                    seed=seed,
                )
            )
