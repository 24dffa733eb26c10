"""A discrete-event simulation of a workload on a composition of Triton nodes.

What it models, and why each piece is there:

- **Tasks** run as ``toolmesh run`` runs them: a closed loop of ``concurrency``
  workers (or, for queueing checks, open Poisson arrivals). Each task's calls
  follow its graph: a call is sent ``delay_s`` after its last dependency answered.
- **Network hop**: every call spends ``hop_s`` in transit (client → gateway → Triton
  and back; ``Workload.hops`` per function where payloads differ), half on the way
  in, half on the way out; it occupies no instance.
- **Routing**: a call goes to the node of its model's pool with the fewest
  outstanding requests for that model, ties in turn, as the gateway routes.
- **Per-instance queues and dynamic batching**: each model on each node has one
  FIFO queue and ``instances`` servers; a free instance takes up to ``max_batch``
  waiting requests at once (Triton's dynamic batcher with no queue delay; requests
  arriving at the same instant are batched together).
- **Device contention**: a node runs ``parallelism`` instances at full speed; when
  more are busy, all busy ones slow down alike (processor sharing). Two CPU
  instances on a 2-core machine do not run four times faster than one; four GPU
  instances on one GPU share it.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import count

from toolmesh_planner.profile import ModelProfile
from toolmesh_planner.workload import TaskShape, Workload

__all__ = ["ModelSetup", "NodeSetup", "SimResult", "simulate"]

# Event kinds, in the order they are handled at one instant: answers and arrivals
# before dispatch, so that requests arriving together can share a batch.
_REPLY, _SEND, _ARRIVE, _TASK_END, _FINISH, _DISPATCH = range(6)
#: The pseudo-model a colocated gateway's work runs as (no model has an empty name).
_GATEWAY = ""


@dataclass(frozen=True)
class ModelSetup:
    """One model on a node: its profile, instance count and the largest batch it forms."""

    profile: ModelProfile
    instances: int = 1
    max_batch: int = 1

    def __post_init__(self) -> None:
        if self.instances < 1 or self.max_batch < 1:
            raise ValueError("instances and max_batch must be at least 1")


@dataclass(frozen=True)
class NodeSetup:
    """One node (one Triton pod) of a pool, with the models the pool loads."""

    pool: str
    models: Mapping[str, ModelSetup]
    parallelism: float = math.inf


@dataclass
class SimResult:
    """What a simulated run predicts.

    ``utilisation`` is per pool and model: busy instance-time over the instances'
    time (all nodes of the pool); ``device_utilisation`` per pool: the share of
    the nodes' parallelism in use.
    """

    wall_s: float
    latencies_s: list[float]
    calls: int
    utilisation: dict[str, dict[str, float]] = field(default_factory=dict)
    device_utilisation: dict[str, float] = field(default_factory=dict)
    mean_batch: dict[str, float] = field(default_factory=dict)

    @property
    def mean_latency_s(self) -> float:
        return sum(self.latencies_s) / len(self.latencies_s) if self.latencies_s else 0.0


class _Batch:
    __slots__ = ("remaining", "requests", "started", "version")

    def __init__(self, requests: list[tuple[int, int, float]], work: float, started: float) -> None:
        self.requests = requests
        self.remaining = work
        self.started = started
        self.version = 0


class _Node:
    def __init__(self, setup: NodeSetup) -> None:
        self.setup = setup
        # (task, call, the call's service scale)
        self.queues: dict[str, deque[tuple[int, int, float]]] = {m: deque() for m in setup.models}
        self.free: dict[str, int] = {m: s.instances for m, s in setup.models.items()}
        self.outstanding: dict[str, int] = dict.fromkeys(setup.models, 0)
        self.dispatch_pending: set[str] = set()
        self.running: dict[int, tuple[str, _Batch]] = {}
        self.rate = 1.0
        self.last_t = 0.0
        self.busy_area = 0.0  # ∫ min(running, parallelism) dt
        self.instance_busy: dict[str, float] = dict.fromkeys(setup.models, 0.0)
        self.batches: dict[str, list[int]] = {m: [0, 0] for m in setup.models}

    def advance(self, now: float) -> None:
        """Account the work done since the last change at the current rate."""
        elapsed = now - self.last_t
        if elapsed > 0:
            for _, batch in self.running.values():
                batch.remaining -= elapsed * self.rate
            self.busy_area += elapsed * min(len(self.running), self.setup.parallelism)
        self.last_t = now

    def new_rate(self) -> float:
        busy = len(self.running)
        return 1.0 if busy <= self.setup.parallelism else self.setup.parallelism / busy


class _Task:
    __slots__ = ("done", "pending", "shape", "started", "waiting")

    def __init__(self, shape: TaskShape, started: float) -> None:
        self.shape = shape
        self.started = started
        self.waiting = [len(c.deps) for c in shape.calls]
        self.pending = len(shape.calls)
        self.done = [False] * len(shape.calls)


class _Dependents:
    """For each shape, the calls that wait for each call (computed once per shape)."""

    def __init__(self) -> None:
        self._cache: dict[int, list[list[int]]] = {}

    def of(self, shape: TaskShape) -> list[list[int]]:
        key = id(shape)
        if key not in self._cache:
            dependents: list[list[int]] = [[] for _ in shape.calls]
            for i, call in enumerate(shape.calls):
                for d in call.deps:
                    dependents[d].append(i)
            self._cache[key] = dependents
        return self._cache[key]


def simulate(
    workload: Workload,
    nodes: Sequence[NodeSetup],
    routes: Mapping[str, str],
    *,
    hop_s: float = 0.0,
    arrival_rate: float | None = None,
    colocated_gateway: bool = False,
    seed: int = 0,
) -> SimResult:
    """Run ``workload`` on ``nodes``; ``routes`` maps each function to its model.

    With ``arrival_rate`` (tasks per second) tasks arrive as a Poisson process
    instead of ``workload.concurrency`` closed-loop workers. With
    ``colocated_gateway`` the client and gateway run on the node itself (``toolmesh
    up`` on one machine): a call's hop, and the program's own work before it
    (``Call.delay_s``), are work its device shares with the model instances, not
    only latency.

    Raises:
        ValueError: a function of the workload has no route or no node serves its model.
    """
    rng = random.Random(seed)
    serving: dict[str, list[int]] = {}
    for i, setup in enumerate(nodes):
        for name in setup.models:
            serving.setdefault(name, []).append(i)
    for function in workload.functions():
        routed = routes.get(function)
        if routed is None:
            raise ValueError(f"no model for function {function!r}")
        if routed not in serving:
            raise ValueError(f"no node serves model {routed!r} (function {function!r})")

    state = [_Node(n) for n in nodes]
    events: list[tuple[float, int, int, int, int, int]] = []
    seq = count()
    tasks: dict[int, _Task] = {}
    dependents = _Dependents()
    batches: dict[int, tuple[int, str]] = {}
    batch_ids = count()
    turn: dict[str, int] = dict.fromkeys(serving, 0)
    latencies: list[float] = []
    calls_done = 0
    next_task = 0
    now = last_end = 0.0

    def push(t: float, kind: int, a: int = 0, b: int = 0, c: int = 0) -> None:
        heapq.heappush(events, (t, kind, next(seq), a, b, c))

    def start_task(t: float) -> None:
        nonlocal next_task
        k = next_task
        next_task += 1
        task = _Task(workload.shapes[k % len(workload.shapes)], t)
        tasks[k] = task
        if not task.shape.calls:
            push(t + task.shape.tail_s, _TASK_END, k)
        for i, call in enumerate(task.shape.calls):
            if not call.deps:
                push(t + lead(call.delay_s), _SEND, k, i)

    def lead(delay: float) -> float:
        """Time before a call is sent: its delay, unless that is work on the shared device."""
        return 0.0 if colocated_gateway else delay

    def reschedule(node_index: int, t: float) -> None:
        node = state[node_index]
        rate = node.new_rate()
        if rate == node.rate and rate == 1.0:
            return
        node.rate = rate
        for bid, (_, batch) in node.running.items():
            batch.version += 1
            push(t + max(0.0, batch.remaining) / rate, _FINISH, node_index, bid, batch.version)

    def dispatch(node_index: int, model: str, t: float) -> None:
        node = state[node_index]
        setup = node.setup.models[model]
        queue = node.queues[model]
        started = False
        while queue and node.free[model] > 0:
            size = min(len(queue), setup.max_batch)
            requests = [queue.popleft() for _ in range(size)]
            node.free[model] -= 1
            scale = sum(r[2] for r in requests) / size
            work = setup.profile.batch_time(size, rng) * scale
            if not started:
                node.advance(t)
                started = True
            batch = _Batch(requests, work, t)
            bid = next(batch_ids)
            batches[bid] = (node_index, model)
            node.running[bid] = (model, batch)
            node.batches[model][0] += 1
            node.batches[model][1] += size
            push(t + work / node.rate, _FINISH, node_index, bid, 0)
        if started:
            reschedule(node_index, t)

    if arrival_rate is None:
        for _ in range(min(workload.concurrency, workload.tasks)):
            start_task(0.0)
    else:
        t = 0.0
        for _ in range(workload.tasks):
            push(t, _TASK_END, -1)  # an arrival: handled as "start a task now"
            t += rng.expovariate(arrival_rate)

    while events:
        now, kind, _, a, b, c = heapq.heappop(events)
        if kind == _SEND:
            task = tasks[a]
            model = routes[task.shape.calls[b].function]
            candidates = serving[model]
            first = turn[model] % len(candidates)
            order = candidates[first:] + candidates[:first]
            chosen = min(order, key=lambda i: state[i].outstanding[model])
            turn[model] += 1
            state[chosen].outstanding[model] += 1
            hop = workload.hops.get(task.shape.calls[b].function, hop_s)
            if colocated_gateway:
                # the client's own work before the call runs on the same cores as the rest
                hop += task.shape.calls[b].delay_s
                node = state[chosen]
                node.advance(now)
                bid = next(batch_ids)
                batches[bid] = (chosen, _GATEWAY)
                node.running[bid] = (_GATEWAY, _Batch([(a, b, 1.0)], hop, now))
                push(now + hop / node.rate, _FINISH, chosen, bid, 0)
                reschedule(chosen, now)
            else:
                push(now + hop / 2, _ARRIVE, a, b, chosen)
        elif kind == _ARRIVE:
            task = tasks[a]
            model = routes[task.shape.calls[b].function]
            node = state[c]
            function = task.shape.calls[b].function
            node.queues[model].append((a, b, workload.scales.get(function, 1.0)))
            if model not in node.dispatch_pending:
                node.dispatch_pending.add(model)
                push(now, _DISPATCH, c, 0, 0)
        elif kind == _DISPATCH:
            node = state[a]
            for model in sorted(node.dispatch_pending):
                dispatch(a, model, now)
            node.dispatch_pending.clear()
        elif kind == _FINISH:
            node_index, model = batches.get(b, (-1, ""))
            if node_index < 0:
                continue
            node = state[node_index]
            _, batch = node.running[b]
            if batch.version != c:
                continue
            node.advance(now)
            del node.running[b]
            del batches[b]
            if model == _GATEWAY:  # the call has crossed the gateway: it queues now
                reschedule(node_index, now)
                task_id, call_index, _ = batch.requests[0]
                push(now, _ARRIVE, task_id, call_index, node_index)
                continue
            node.free[model] += 1
            node.instance_busy[model] += now - batch.started
            for task_id, call_index, _ in batch.requests:
                node.outstanding[model] -= 1
                function = tasks[task_id].shape.calls[call_index].function
                back = 0.0 if colocated_gateway else workload.hops.get(function, hop_s) / 2
                push(now + back, _REPLY, task_id, call_index)
            reschedule(node_index, now)
            dispatch(node_index, model, now)
        elif kind == _REPLY:
            task = tasks[a]
            task.done[b] = True
            task.pending -= 1
            calls_done += 1
            for j in dependents.of(task.shape)[b]:
                task.waiting[j] -= 1
                if task.waiting[j] == 0:
                    push(now + lead(task.shape.calls[j].delay_s), _SEND, a, j)
            if task.pending == 0:
                push(now + task.shape.tail_s, _TASK_END, a)
        elif kind == _TASK_END:
            if a < 0:
                start_task(now)
                continue
            task = tasks.pop(a)
            latencies.append(now - task.started)
            last_end = now
            if arrival_rate is None and next_task < workload.tasks:
                start_task(now)

    # stale completions (rescheduled under contention) may lie later: the run ends
    # when its last task does
    wall = last_end
    for finished in state:
        finished.advance(wall)
    return _result(wall, latencies, calls_done, state)


def _result(wall: float, latencies: list[float], calls: int, state: list[_Node]) -> SimResult:
    busy: dict[str, dict[str, float]] = {}
    capacity: dict[str, dict[str, float]] = {}
    device_busy: dict[str, float] = {}
    device_capacity: dict[str, float] = {}
    batch_counts: dict[str, list[int]] = {}
    for node in state:
        pool = node.setup.pool
        for model, setup in node.setup.models.items():
            busy.setdefault(pool, {}).setdefault(model, 0.0)
            capacity.setdefault(pool, {}).setdefault(model, 0.0)
            busy[pool][model] += node.instance_busy[model]
            capacity[pool][model] += setup.instances * wall
            counts = batch_counts.setdefault(model, [0, 0])
            counts[0] += node.batches[model][0]
            counts[1] += node.batches[model][1]
        parallel = min(node.setup.parallelism, sum(s.instances for s in node.setup.models.values()))
        device_busy[pool] = device_busy.get(pool, 0.0) + node.busy_area
        device_capacity[pool] = device_capacity.get(pool, 0.0) + parallel * wall
    return SimResult(
        wall_s=wall,
        latencies_s=latencies,
        calls=calls,
        utilisation={
            pool: {m: (busy[pool][m] / cap if cap > 0 else 0.0) for m, cap in models.items()}
            for pool, models in capacity.items()
        },
        device_utilisation={
            pool: (device_busy[pool] / cap if cap > 0 else 0.0)
            for pool, cap in device_capacity.items()
        },
        mean_batch={m: (c[1] / c[0] if c[0] else 0.0) for m, c in batch_counts.items()},
    )
