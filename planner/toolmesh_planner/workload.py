"""Workloads: the call graph of each task, recovered from what a run recorded.

The parallelizer's plan (``toolmesh_codegen.parallelize.plan``) counts a program's
rounds, but how many calls a round makes is data: ``street_report`` makes one
``resize`` and one ``greyscale`` per vehicle ``find`` returns. So the planner takes
the graph from a run: every record of ``toolmesh run``'s results file lists its
task's calls with their start and end, and a call depends on the calls that had
ended before it started (happens-before). For programs made of ``asyncio.gather``
rounds that is exactly their graph; for branches of unequal length it may add an
edge the program did not have, which can only lengthen a prediction. Recording
also avoids a dependency on the codegen part: the planner reads data, not
programs, so a trace from any client (or a hand-written graph) is a workload too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from toolmesh_planner.profile import DeviceProfile

__all__ = [
    "Call",
    "TaskShape",
    "Workload",
    "WorkloadError",
    "function_hops",
    "input_scales",
    "shapes_from_results",
]

#: Calls that start within this many seconds of another's end are taken as concurrent
#: with it (a clock's resolution and a scheduler's jitter), not dependent on it.
_EPSILON_S = 1e-4


class WorkloadError(ValueError):
    """A results file or graph that does not describe a workload."""


@dataclass(frozen=True)
class Call:
    """One call of a task: the function, the calls it waits for, the client's delay.

    ``delay_s`` is the time between the last dependency's answer (or the task's
    start) and this call being sent: the program's own work between rounds.
    """

    function: str
    deps: tuple[int, ...] = ()
    delay_s: float = 0.0


@dataclass(frozen=True)
class TaskShape:
    """The call graph of one task; ``tail_s`` is the program's work after its last call."""

    calls: tuple[Call, ...]
    tail_s: float = 0.0

    def __post_init__(self) -> None:
        for i, call in enumerate(self.calls):
            if any(d >= i or d < 0 for d in call.deps):
                raise WorkloadError(f"call {i} depends on a call that is not before it")

    @property
    def rounds(self) -> int:
        """The longest chain of dependent calls (the critical path in calls)."""
        depth: list[int] = []
        for call in self.calls:
            depth.append(1 + max((depth[d] for d in call.deps), default=0))
        return max(depth, default=0)

    @classmethod
    def chain(cls, functions: Sequence[str]) -> TaskShape:
        """Each call after the one before (a pipeline)."""
        return cls(tuple(Call(f, (i - 1,) if i else ()) for i, f in enumerate(functions)))

    @classmethod
    def rounds_of(cls, rounds: Sequence[Sequence[str]]) -> TaskShape:
        """Rounds of concurrent calls, each round waiting for the whole previous one."""
        calls: list[Call] = []
        previous: tuple[int, ...] = ()
        for round_ in rounds:
            first = len(calls)
            calls.extend(Call(f, previous) for f in round_)
            previous = tuple(range(first, len(calls)))
        return cls(tuple(calls))


@dataclass(frozen=True)
class Workload:
    """``tasks`` tasks cycling through ``shapes``, run ``concurrency`` at a time.

    That is how ``toolmesh run`` runs a batch: a closed loop of ``concurrency``
    workers, each starting its next task when its last one ends.
    """

    shapes: tuple[TaskShape, ...]
    tasks: int
    concurrency: int
    #: each function's service time relative to its model's profile (see input_scales)
    scales: Mapping[str, float] = field(default_factory=dict)
    #: each function's hop, where it differs from the plan's (see function_hops)
    hops: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.shapes:
            raise WorkloadError("a workload needs at least one task shape")
        if self.tasks < 1 or self.concurrency < 1:
            raise WorkloadError("tasks and concurrency must be at least 1")

    def functions(self) -> set[str]:
        return {c.function for s in self.shapes for c in s.calls}

    def calls_per_task(self) -> dict[str, float]:
        """Mean calls per task of each function."""
        counts: dict[str, float] = {}
        for shape in self.shapes:
            for call in shape.calls:
                counts[call.function] = counts.get(call.function, 0.0) + 1 / len(self.shapes)
        return counts


def _shape(record: Mapping[str, Any], *, keep_delays: bool) -> TaskShape:
    calls = sorted(record.get("calls") or [], key=lambda c: float(c["start"]))
    start = float(record.get("start", calls[0]["start"] if calls else 0.0))
    shaped: list[Call] = []
    for i, call in enumerate(calls):
        begun = float(call["start"])
        deps = tuple(j for j in range(i) if float(calls[j]["end"]) <= begun + _EPSILON_S)
        # keep only the deps no other dep already implies (a smaller, equivalent graph)
        implied = {d for j in deps for d in shaped[j].deps}
        deps = tuple(d for d in deps if d not in implied)
        ready = max((float(calls[d]["end"]) for d in deps), default=start)
        delay = max(0.0, begun - ready) if keep_delays else 0.0
        shaped.append(Call(str(call["function"]), deps, delay))
    end = float(record.get("end", max((float(c["end"]) for c in calls), default=start)))
    last = max((float(c["end"]) for c in calls), default=start)
    tail = max(0.0, end - last) if keep_delays else 0.0
    return TaskShape(tuple(shaped), tail)


def shapes_from_results(
    records: Iterable[Mapping[str, Any]], *, keep_delays: bool = True
) -> tuple[TaskShape, ...]:
    """The call graph of each successful task of a ``toolmesh run`` results file.

    ``keep_delays`` keeps the client's own time between rounds (decoding, cropping);
    recorded at high concurrency it includes waiting for a busy CPU, so record the
    workload at a low one (``toolmesh run --concurrency 1``).
    """
    shapes = tuple(
        _shape(r, keep_delays=keep_delays) for r in records if r.get("ok", True) and r.get("calls")
    )
    if not shapes:
        raise WorkloadError("no successful task with recorded calls")
    return shapes


def _contention(calls: Sequence[Mapping[str, Any]], index: int, device: DeviceProfile) -> float:
    """How much slower than alone call ``index`` ran, as the simulator would model it: the
    instances busy at its midpoint (the task's own calls, at most each model's
    instances) over the device's parallelism."""
    call = calls[index]
    middle = (float(call["start"]) + float(call["end"])) / 2
    busy: dict[str, int] = {}
    for other in calls:
        if float(other["start"]) <= middle <= float(other["end"]):
            model = device.model_of(str(other["function"])) or str(other["function"])
            busy[model] = busy.get(model, 0) + 1
    running = sum(
        min(n, device.models[m].instances if m in device.models else 1) for m, n in busy.items()
    )
    return max(1.0, running / device.parallelism)


def function_hops(functions: Iterable[str], device: DeviceProfile) -> dict[str, float]:
    """Each function's hop as ``device``'s profile measured it (where it did)."""
    hops = {}
    for function in functions:
        model = device.model_of(function)
        if model is not None and device.models[model].hop_s > 0:
            hops[function] = device.models[model].hop_s
    return hops


def _queued(calls: Sequence[Mapping[str, Any]], index: int, device: DeviceProfile) -> bool:
    """Whether call ``index`` had to wait for an instance: as many calls of its model
    started before it and were still running when it started."""
    call = calls[index]
    model = device.model_of(str(call["function"]))
    if model is None:
        return False
    begun = float(call["start"])
    ahead = sum(
        1
        for j, other in enumerate(calls)
        if j != index
        and device.model_of(str(other["function"])) == model
        and (float(other["start"]), j) < (begun, index)
        and float(other["end"]) > begun
    )
    return ahead >= device.models[model].instances


def _alone(calls: Sequence[Mapping[str, Any]], index: int) -> bool:
    """Whether no other call of the task ran at any time during call ``index``."""
    start, end = float(calls[index]["start"]), float(calls[index]["end"])
    return not any(
        j != index and float(o["start"]) < end and float(o["end"]) > start
        for j, o in enumerate(calls)
    )


def input_scales(
    records: Iterable[Mapping[str, Any]],
    device: DeviceProfile,
    hop_s: float,
    *,
    max_scale: float = 1.0,
) -> tuple[dict[str, float], dict[str, float]]:
    """How much each function's calls in this workload cost against its profile, and
    their hops: ``(scales, hops)``, by function.

    A profile times each model on one sample input (a full street frame); a
    workload's own inputs may be smaller (crops of detections) or larger, and
    both the model's time and the payload's share of the hop follow (as does the
    client's work encoding them). The results file shows what its calls took on
    ``device`` (the profile of the machine that ran it). With ``base`` the
    smallest hop the profile measured (a call with almost no payload; ``hop_s``
    if none was) and, per function, ``var`` its model's hop beyond ``base`` and
    ``q`` its model's mean service time, a call took ``base + s × (var + q)``,
    its service slowed by the task's other calls running beside it as the
    simulator models it (:func:`_contention`); ``s`` is the function's scale and
    ``base + s × var`` its hop. Calls that waited for an instance behind calls of
    the same task are left out where others did not (:func:`_queued`): their
    time is queueing, which the simulator adds itself. A scale is at most
    ``max_scale``: the profile's sample (a full frame) is taken as the costliest
    input, and a call slower than that spent the difference outside Triton (the
    client encoding a PIL image, the gateway decoding it), which joins its hop,
    as far as calls that ran alone show it.
    Record the run at concurrency 1 (one task at a time) on a quiet machine.
    """
    measured = [m.hop_s for m in device.models.values() if m.hop_s > 0]
    base = min(measured) if measured else hop_s
    free: dict[str, list[float]] = {}
    every: dict[str, list[float]] = {}
    solo: dict[str, list[float]] = {}
    for record in records:
        if not record.get("ok", True):
            continue
        calls = record.get("calls") or []
        for index, call in enumerate(calls):
            function = str(call["function"])
            alone = (float(call["seconds"]) - base) / _contention(calls, index, device)
            every.setdefault(function, []).append(alone)
            if not _queued(calls, index, device):
                free.setdefault(function, []).append(alone)
            if _alone(calls, index):
                solo.setdefault(function, []).append(alone)
    scales: dict[str, float] = {}
    hops: dict[str, float] = {}
    for function, values in every.items():
        model = device.model_of(function)
        if model is None:
            continue
        variable = max(0.0, device.models[model].hop_s - base)
        profiled = device.models[model].service[1].mean + variable
        if profiled > 0:
            chosen = free.get(function) or values
            spent = sum(chosen) / len(chosen)
            scale = max(0.02, spent / profiled)
            if scale > max_scale:
                scale = max_scale
                # only a call with nothing beside it shows its own work outside Triton; one
                # that ran beside others was also slowed by their clients' and gateway's work
                if solo.get(function):
                    own = sum(solo[function]) / len(solo[function])
                    outside = own - scale * device.models[model].service[1].mean
                    hops[function] = base + max(variable, outside)
                else:
                    hops[function] = base + variable
            else:
                hops[function] = base + scale * variable
            scales[function] = scale
    return scales, hops
