"""``toolmesh plan --explain``: why the plan chose its mix, in a few sentences.

Three things a person deciding what to buy wants to see: what made this
composition enough (its busiest model and pool), what each other mix of node
types would have cost at best, and by how much the next-cheaper composition the
search simulated misses the target.
"""

from __future__ import annotations

from collections.abc import Mapping

from toolmesh_planner.search import Evaluation, NodeType, PlanResult

__all__ = ["explain_lines"]


def _mix(evaluation: Evaluation) -> str:
    return " + ".join(sorted({p.node_type for p in evaluation.composition.pools}))


def _busiest(evaluation: Evaluation) -> str:
    best = ("", "", -1.0)
    for pool, models in evaluation.result.utilisation.items():
        for model, used in models.items():
            if used > best[2]:
                best = (pool, model, used)
    pool, model, used = best
    device = evaluation.result.device_utilisation.get(pool, 0.0)
    return (
        f"the busiest instances are {model} on {pool} ({used:.0%}; that device {device:.0%} busy)"
    )


def explain_lines(plan: PlanResult, types: Mapping[str, NodeType]) -> list[str]:
    """The explanation, one sentence a line."""
    lines = [
        f"searched {plan.assignments} assignments of models to (node type, instances); "
        f"simulated {len(plan.evaluated)} compositions ({plan.workload.tasks} tasks at "
        f"concurrency {plan.workload.concurrency} each); {plan.pruned} left unsimulated "
        "because their cost bound was no better than the plan",
    ]
    lines.extend(plan.notes)
    limit = plan.target.wall_limit_s(plan.workload.tasks)
    best = plan.best
    if best is None:
        closest = min(plan.evaluated, key=lambda e: e.result.wall_s, default=None)
        if closest is None:
            lines.append(
                f"no composition can meet {plan.target.describe()}: even without queueing, "
                f"a task's own chain of calls times the tasks per worker exceeds {limit:.1f} s"
            )
        else:
            lines.append(
                f"the fastest composition simulated, {closest.composition.describe()}, "
                f"takes {closest.result.wall_s:.1f} s against {limit:.1f} s allowed"
            )
        return lines
    lines.append(
        f"why this mix: {best.composition.describe()} finishes in {best.result.wall_s:.1f} s "
        f"of {limit:.1f} s allowed; {_busiest(best)}"
    )
    cheapest: dict[str, Evaluation] = {}
    for evaluation in plan.evaluated:
        if evaluation.meets:
            mix = _mix(evaluation)
            if mix not in cheapest or evaluation.cost_usd < cheapest[mix].cost_usd:
                cheapest[mix] = evaluation
    cheapest[_mix(best)] = best
    for mix, evaluation in sorted(cheapest.items(), key=lambda kv: kv[1].cost_usd):
        marker = (
            "chosen"
            if evaluation is best
            else f"{evaluation.cost_usd / best.cost_usd:.2f}× the cost"
        )
        lines.append(
            f"best simulated with {mix}: {evaluation.composition.describe()}, "
            f"{evaluation.result.wall_s:.1f} s, {evaluation.cost_usd:.4g} USD ({marker})"
        )
    for mix, bound in sorted(plan.bounds.items(), key=lambda kv: kv[1]):
        if mix not in cheapest:
            lines.append(
                f"with {mix}: at least {bound:.4g} USD by its cost bound "
                f"({bound / best.cost_usd:.2f}× the plan's), so not simulated further"
            )
    cheaper = plan.next_cheaper()
    if cheaper is None:
        lines.append(
            "no cheaper composition per hour was simulated: the cost bounds ruled them out"
        )
    else:
        miss = cheaper.result.wall_s / limit - 1
        lines.append(
            f"next-cheaper option: {cheaper.composition.describe()} at "
            f"{cheaper.usd_per_hour:.4g} USD/hour takes {cheaper.result.wall_s:.1f} s, "
            f"missing the target by {miss:.0%} ({cheaper.result.wall_s - limit:.1f} s)"
        )
    return lines
