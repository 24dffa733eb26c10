"""The simulator against cases whose answers are known in closed form.

Queueing theory gives the mean waiting time of M/D/1 (Pollaczek–Khinchine) and
M/M/c (Erlang C); a chain and a fan-out of deterministic calls have exact wall
times; processor sharing and dynamic batching have exact finishing times. Every
expected value here is computed from the formula, not from a run.
"""

from __future__ import annotations

import math
import random

import pytest

from toolmesh_planner.profile import ModelProfile, ServiceTime
from toolmesh_planner.simulate import ModelSetup, NodeSetup, simulate
from toolmesh_planner.workload import Call, TaskShape, Workload


class Exponential:
    """An exponential service time (the M of M/M/c)."""

    def __init__(self, mean: float) -> None:
        self.mean = mean

    def sample(self, rng: random.Random) -> float:
        return rng.expovariate(1 / self.mean)


def model(seconds: float, **batches: float) -> ModelProfile:
    service = {1: ServiceTime.constant(seconds)}
    service.update({int(k.removeprefix("b")): ServiceTime.constant(v) for k, v in batches.items()})
    return ModelProfile(functions=(), service=service, max_batch_size=max(service))


def one_node(models: dict[str, ModelSetup], parallelism: float = math.inf) -> list[NodeSetup]:
    return [NodeSetup("pool", models, parallelism)]


def identity(*names: str) -> dict[str, str]:
    return {n: n for n in names}


def erlang_c_wait(arrival: float, service_mean: float, servers: int) -> float:
    """Mean time in queue of M/M/c."""
    a = arrival * service_mean  # offered load in Erlangs
    rho = a / servers
    head = sum(a**k / math.factorial(k) for k in range(servers))
    tail = a**servers / (math.factorial(servers) * (1 - rho))
    waiting_probability = tail / (head + tail)
    return waiting_probability * service_mean / (servers - servers * rho)


def test_md1_mean_wait_matches_pollaczek_khinchine() -> None:
    arrival, service = 0.6, 1.0
    rho = arrival * service
    expected_wait = rho * service / (2 * (1 - rho))  # 0.75 s
    workload = Workload((TaskShape((Call("f"),)),), tasks=40_000, concurrency=1)
    result = simulate(
        workload,
        one_node({"f": ModelSetup(model(service))}),
        identity("f"),
        arrival_rate=arrival,
        seed=1,
    )
    wait = result.mean_latency_s - service
    assert wait == pytest.approx(expected_wait, rel=0.06)


@pytest.mark.parametrize(("servers", "arrival"), [(1, 0.7), (3, 2.4)])
def test_mmc_mean_wait_matches_erlang_c(servers: int, arrival: float) -> None:
    mean = 1.0
    profile = ModelProfile(functions=(), service={1: Exponential(mean)})
    workload = Workload((TaskShape((Call("f"),)),), tasks=60_000, concurrency=1)
    result = simulate(
        workload,
        one_node({"f": ModelSetup(profile, instances=servers)}),
        identity("f"),
        arrival_rate=arrival,
        seed=2,
    )
    wait = result.mean_latency_s - mean
    assert wait == pytest.approx(erlang_c_wait(arrival, mean, servers), rel=0.08)


def test_pure_chain_is_the_sum_of_its_steps() -> None:
    steps = {"a": 0.010, "b": 0.020, "c": 0.005, "d": 0.040, "e": 0.001}
    hop, delay, tail = 0.002, 0.003, 0.004
    calls = tuple(Call(name, (i - 1,) if i else (), delay) for i, name in enumerate(steps))
    workload = Workload((TaskShape(calls, tail),), tasks=7, concurrency=1)
    nodes = one_node({m: ModelSetup(model(s)) for m, s in steps.items()})
    result = simulate(workload, nodes, identity(*steps), hop_s=hop)
    per_task = sum(steps.values()) + len(steps) * (hop + delay) + tail
    assert result.wall_s == pytest.approx(7 * per_task)
    assert result.latencies_s == pytest.approx([per_task] * 7)
    assert result.calls == 35


def test_pure_fan_out_runs_in_waves_of_the_instance_count() -> None:
    # one round of 7 calls to a model with 3 instances of 1 s: waves of 3, 3, 1
    workload = Workload((TaskShape.rounds_of([["f"] * 7]),), tasks=1, concurrency=1)
    nodes = one_node({"f": ModelSetup(model(1.0), instances=3)})
    result = simulate(workload, nodes, identity("f"), hop_s=0.01)
    assert result.wall_s == pytest.approx(3.0 + 0.01)
    assert result.utilisation["pool"]["f"] == pytest.approx(7 / (3 * 3.01))


def test_fan_out_of_simultaneous_calls_is_batched_together() -> None:
    # 6 calls arrive at once; 2 instances each take up to 4: batches of 4 and 2
    workload = Workload((TaskShape.rounds_of([["f"] * 6]),), tasks=1, concurrency=1)
    profile = model(1.0, b2=1.2, b4=1.5)
    nodes = one_node({"f": ModelSetup(profile, instances=2, max_batch=4)})
    result = simulate(workload, nodes, identity("f"))
    assert result.wall_s == pytest.approx(1.5)
    assert result.mean_batch["f"] == pytest.approx(3.0)


def test_rounds_wait_for_the_slowest_call_of_the_round_before() -> None:
    shape = TaskShape.rounds_of([["fast", "slow"], ["fast"]])
    nodes = one_node({"fast": ModelSetup(model(0.1)), "slow": ModelSetup(model(0.5))})
    result = simulate(Workload((shape,), 1, 1), nodes, identity("fast", "slow"))
    assert result.wall_s == pytest.approx(0.6)


def test_instances_beyond_the_device_parallelism_share_it() -> None:
    # two 1 s requests on two instances of a device that runs one at full speed
    workload = Workload((TaskShape.rounds_of([["f", "f"]]),), tasks=1, concurrency=1)
    shared = simulate(
        workload,
        one_node({"f": ModelSetup(model(1.0), instances=2)}, parallelism=1.0),
        identity("f"),
    )
    assert shared.wall_s == pytest.approx(2.0)
    assert shared.device_utilisation["pool"] == pytest.approx(1.0)
    free = simulate(
        workload,
        one_node({"f": ModelSetup(model(1.0), instances=2)}, parallelism=2.0),
        identity("f"),
    )
    assert free.wall_s == pytest.approx(1.0)


def test_processor_sharing_with_staggered_work() -> None:
    # a: 1 s of work from t=0; b: 1 s from t=0.5 (after a 0.5 s delay) on a device of
    # parallelism 1: alone until 0.5 (a has 0.5 left), then both at half speed, so a
    # ends at 1.5; b has 0.5 left and ends alone at 2.0
    shape = TaskShape((Call("a"), Call("b", (), 0.5)))
    nodes = one_node({"a": ModelSetup(model(1.0)), "b": ModelSetup(model(1.0))}, parallelism=1.0)
    result = simulate(Workload((shape,), 1, 1), nodes, identity("a", "b"))
    assert result.wall_s == pytest.approx(2.0)


def test_closed_loop_saturates_at_the_instances_service_rate() -> None:
    # 16 workers on 2 instances of 50 ms: throughput 40/s, so 400 tasks take 10 s
    workload = Workload((TaskShape((Call("f"),)),), tasks=400, concurrency=16)
    nodes = one_node({"f": ModelSetup(model(0.05), instances=2)})
    result = simulate(workload, nodes, identity("f"))
    assert result.wall_s == pytest.approx(10.0, rel=0.01)
    # Little's law: 16 in the system at 40/s is 0.4 s each
    assert result.mean_latency_s == pytest.approx(0.4, rel=0.02)


def test_calls_go_to_the_least_loaded_node() -> None:
    workload = Workload((TaskShape((Call("f"),)),), tasks=300, concurrency=6)
    nodes = [NodeSetup("pool", {"f": ModelSetup(model(0.1))}) for _ in range(3)]
    result = simulate(workload, nodes, identity("f"))
    assert result.wall_s == pytest.approx(300 * 0.1 / 3, rel=0.01)


def test_a_function_nobody_serves_is_refused() -> None:
    workload = Workload((TaskShape((Call("g"),)),), tasks=1, concurrency=1)
    with pytest.raises(ValueError, match="no node serves model 'g'"):
        simulate(workload, one_node({"f": ModelSetup(model(1.0))}), identity("f", "g"))


def test_a_colocated_gateway_shares_the_device() -> None:
    # hop 1 s of work on a device of parallelism 1, then 1 s of service: alone, 2 s; two
    # calls at once on two instances: both hops at half speed (end at 2), both services
    # at half speed (end at 4); a gateway elsewhere: the hop is latency, so 0.5 + 1 + 0.5
    # for one call and 0.5 + 2 + 0.5 for two sharing the device.
    nodes = one_node({"f": ModelSetup(model(1.0), instances=2)}, parallelism=1.0)
    one = Workload((TaskShape((Call("f"),)),), tasks=1, concurrency=1)
    two = Workload((TaskShape.rounds_of([["f", "f"]]),), tasks=1, concurrency=1)
    here = {"colocated_gateway": True, "hop_s": 1.0}
    assert simulate(one, nodes, identity("f"), **here).wall_s == pytest.approx(2.0)
    assert simulate(two, nodes, identity("f"), **here).wall_s == pytest.approx(4.0)
    assert simulate(one, nodes, identity("f"), hop_s=1.0).wall_s == pytest.approx(2.0)
    assert simulate(two, nodes, identity("f"), hop_s=1.0).wall_s == pytest.approx(3.0)


def test_per_function_hops_override_the_plans() -> None:
    shape = TaskShape.chain(["a", "b"])
    workload = Workload((shape,), tasks=1, concurrency=1, hops={"a": 0.3})
    nodes = one_node({"a": ModelSetup(model(0.1)), "b": ModelSetup(model(0.1))})
    result = simulate(workload, nodes, identity("a", "b"), hop_s=0.05)
    assert result.wall_s == pytest.approx(0.1 + 0.3 + 0.1 + 0.05)
