"""A block's scheduler nodes as the plan's call graph (:mod:`toolmesh_codegen.graph`):
the nodes that call the mesh become steps, the others only carry dependencies.

It reads what the scheduler decided (start times, predecessors); it decides nothing.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence

from toolmesh_codegen._dataflow import is_gather_call, target_names
from toolmesh_codegen._plan.nodes import INF, Node, NodeKind
from toolmesh_codegen.graph import PlanGraph, Step, StepKind, reduce_edges
from toolmesh_codegen.validate import is_mesh_call


def block_graph(
    nodes: Sequence[Node], preds: Sequence[Sequence[int]], started: dict[int, float]
) -> PlanGraph:
    """The steps among ``nodes`` with their rounds; edges through non-step nodes."""
    steps: dict[int, Step] = {}
    for j, node in enumerate(nodes):
        calls = _mesh_calls(node)
        if calls:
            steps[j] = _step(f"s{len(steps) + 1}", node, calls, started.get(j, INF))
    up: dict[int, set[int]] = {}
    for j in range(len(nodes)):
        up[j] = set()
        for i in preds[j]:
            up[j] |= {i} if i in steps else up[i]
    edges = reduce_edges(
        [steps[j].id for j in steps], {steps[j].id: {steps[i].id for i in up[j]} for j in steps}
    )
    return PlanGraph(tuple(steps.values()), edges)


def _mesh_calls(node: Node) -> list[ast.Call]:
    roots: list[ast.AST] = [*node.prelude, *node.stmts]
    if node.awaitable is not None:
        roots.append(node.awaitable)
    seen: set[int] = set()
    calls: list[ast.Call] = []
    for root in roots:
        for sub in ast.walk(root):
            if isinstance(sub, ast.Call) and is_mesh_call(sub) and id(sub) not in seen:
                seen.add(id(sub))
                calls.append(sub)
    return calls


def _function(call: ast.Call) -> str:
    first = call.args[0] if call.args else None
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value
    return "?"


def _fans_out(node: Node) -> bool:
    """A gather over a comprehension: one call per item, all in one round."""
    roots: list[ast.AST] = [*node.stmts]
    if node.awaitable is not None:
        roots.append(node.awaitable)
    return any(
        is_gather_call(sub)
        and any(
            isinstance(arg, ast.Starred) and isinstance(arg.value, ast.ListComp)
            for arg in sub.args  # type: ignore[attr-defined]
        )
        for root in roots
        for sub in ast.walk(root)
    )


def _constants(call: ast.Call) -> str:
    return ", ".join(
        f"{k.arg}={k.value.value!r}"
        for k in call.keywords
        if k.arg is not None and isinstance(k.value, ast.Constant)
    )


def _step(step_id: str, node: Node, calls: list[ast.Call], start: float) -> Step:
    functions = tuple(dict.fromkeys(_function(c) for c in calls))
    fan_out = _fans_out(node)
    one_round = node.kind is NodeKind.CALL or node.weight == 1
    kind = StepKind.CALL if one_round else StepKind.BLOCK
    targets = ", ".join(target_names(node.target)) if node.target is not None else ""
    if kind is StepKind.CALL and len(calls) == 1:
        text = f"{functions[0]}({_constants(calls[0])})"
    elif kind is StepKind.CALL:
        text = ", ".join(functions)
    else:
        text = f"{node.label}: {', '.join(functions)}"
    if fan_out:
        text += f" per {node.over or 'item'}"
    label = f"{targets} = {text}" if targets and kind is StepKind.CALL else text
    rounds = None if node.weight == INF else int(node.weight)
    first = None if start == INF else int(start) + 1
    return Step(step_id, label, kind, functions, first, rounds, fan_out)
