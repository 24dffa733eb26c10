"""Pass 4, schedule: ASAP list scheduling of one block's nodes into rounds. Calls that
become ready together are one ``asyncio.gather``; a multi-round ``if`` or loop runs as a
task awaited before its first dependent, or in place when nothing overlaps it.
"""

from __future__ import annotations

import ast
import enum
from collections.abc import Iterable

from toolmesh_codegen._dataflow import Effects
from toolmesh_codegen._plan.build import Names, as_store, asyncio_call, name_node
from toolmesh_codegen._plan.dag import block_graph
from toolmesh_codegen._plan.nodes import Node, NodeKind, Schedule


class ItemKind(enum.Enum):
    """One step of a block's emitted order."""

    INLINE = "inline"
    """A node's statements in place."""
    GATHER = "gather"
    """One round: the ready calls in one ``asyncio.gather``."""
    FORK = "fork"
    """A multi-round node started as a task (``asyncio.ensure_future``)."""
    JOIN = "join"
    """A task awaited, right before its first dependent."""


class Scheduler:
    """ASAP list scheduling of one block's nodes into rounds, tasks and inline statements."""

    def __init__(self, names: Names, nodes: list[Node], outside: set[str]) -> None:
        self.names = names
        self.nodes = nodes
        n = len(nodes)
        # A name bound by a node matters to other nodes only if one of them reads it
        # before binding it itself, or code outside the block reads it; other bindings
        # (loop variables, temporaries used in place) order nothing.
        for i, node in enumerate(nodes):
            visible = set(outside)
            for j, other in enumerate(nodes):
                if j != i:
                    visible |= other.effects.reads
            effects = node.effects
            rebound = effects.writes - visible - effects.mutations
            if rebound:
                node.effects = Effects(effects.reads, effects.writes - rebound, effects.mutations)
        self.preds: list[list[int]] = [[] for _ in range(n)]
        for j in range(n):
            for i in range(j):
                a, b = nodes[i], nodes[j]
                if NodeKind.BARRIER in (a.kind, b.kind) or a.effects.conflicts(b.effects):
                    self.preds[j].append(i)

    def critical_path(self) -> float:
        finish: list[float] = []
        for j, node in enumerate(self.nodes):
            start = max((finish[i] for i in self.preds[j]), default=0.0)
            finish.append(start + node.cp)
        return max(finish, default=0.0)

    def run(self) -> Schedule:
        nodes = self.nodes
        done: dict[int, float] = {}  # node -> when its results are available
        started: dict[int, float] = {}  # node -> when it starts (for the plan's graph)
        tasks: dict[int, str] = {}  # forked, not yet joined
        items: list[tuple[ItemKind, list[int]]] = []
        remaining = list(range(len(nodes)))
        t = 0.0

        def ready(j: int) -> bool:
            return all(i in done and done[i] <= t for i in self.preds[j])

        def join_for(js: Iterable[int]) -> None:
            for j in js:
                for i in self.preds[j]:
                    if i in tasks:
                        items.append((ItemKind.JOIN, [i]))
                        del tasks[i]

        while remaining:
            progressed = True
            while progressed:
                progressed = False
                for j in remaining:
                    node = nodes[j]
                    if node.kind in (NodeKind.PURE, NodeKind.BARRIER) and ready(j):
                        if node.kind is NodeKind.BARRIER:
                            for i in sorted(tasks, key=lambda k: done[k]):
                                items.append((ItemKind.JOIN, [i]))
                            tasks.clear()
                        join_for([j])
                        items.append((ItemKind.INLINE, [j]))
                        started[j] = t
                        t += node.weight
                        done[j] = t
                        remaining.remove(j)
                        progressed = True
                        break
            if not remaining:
                break
            runnable = [j for j in remaining if ready(j)]
            group: list[int] = []
            forks: list[int] = []
            exclusive: list[int] = []
            for j in runnable:
                node = nodes[j]
                if node.kind is NodeKind.CALL:
                    group.append(j)
                elif node.kind is NodeKind.OPAQUE:
                    wrappable = node.awaitable is not None or (
                        node.wrap is not None and node.wrap()
                    )
                    if not wrappable:
                        exclusive.append(j)
                    elif node.weight == 1:
                        group.append(j)
                    elif node.weight == 0:
                        exclusive.append(j)
                    else:
                        forks.append(j)
            if group or forks:
                join_for(group + forks)
                for j in forks:
                    tasks[j] = ""
                    started[j] = t
                    done[j] = t + nodes[j].weight
                    items.append((ItemKind.FORK, [j]))
                    remaining.remove(j)
                if group:
                    items.append((ItemKind.GATHER, group))
                    t += 1
                    for j in group:
                        started[j] = t - 1
                        done[j] = t
                        remaining.remove(j)
                continue
            if exclusive:
                j = exclusive[0]
                join_for([j])
                items.append((ItemKind.INLINE, [j]))
                started[j] = t
                t += nodes[j].weight
                done[j] = t
                remaining.remove(j)
                continue
            pending = [done[i] for i in tasks if done[i] > t]
            if not pending:  # pragma: no cover - every node has its predecessors scheduled
                raise AssertionError("scheduler stalled")
            t = min(pending)
        for i in sorted(tasks, key=lambda k: done[k]):
            items.append((ItemKind.JOIN, [i]))
            t = max(t, done[i])
        tasks.clear()
        graph = block_graph(nodes, self.preds, started)
        return Schedule(self._emit(items), t, self.critical_path(), graph)

    def _emit(self, items: list[tuple[ItemKind, list[int]]]) -> list[ast.stmt]:
        nodes = self.nodes
        # a task that overlaps nothing runs in place
        inline_forks: set[int] = set()
        for index, (kind, members) in enumerate(items):
            if kind is not ItemKind.FORK:
                continue
            j = members[0]
            for later_kind, later in items[index + 1 :]:
                if later_kind is ItemKind.JOIN and later == [j]:
                    inline_forks.add(j)
                    break
                if later_kind in (ItemKind.GATHER, ItemKind.FORK) or (
                    later_kind is ItemKind.INLINE and nodes[later[0]].weight
                ):
                    break
        out: list[ast.stmt] = []
        task_names: dict[int, str] = {}
        for kind, members in items:
            if kind is ItemKind.INLINE or (kind is ItemKind.FORK and members[0] in inline_forks):
                out.extend(nodes[members[0]].stmts)
            elif kind is ItemKind.JOIN:
                j = members[0]
                if j in inline_forks:
                    continue
                node = nodes[j]
                joined = ast.Await(name_node(task_names[j]))
                out.append(
                    ast.Assign(targets=[node.target], value=joined)
                    if node.target is not None
                    else ast.Expr(value=joined)
                )
            elif kind is ItemKind.FORK:
                j = members[0]
                node = nodes[j]
                assert node.awaitable is not None
                task = self.names.fresh(f"{node.label}_task")
                task_names[j] = task
                out.extend(node.prelude)
                out.append(
                    ast.Assign(
                        targets=[name_node(task, True)],
                        value=asyncio_call("ensure_future", node.awaitable),
                    )
                )
            else:
                out.extend(self._gather(members))
        return out

    def _gather(self, members: list[int]) -> list[ast.stmt]:
        nodes = self.nodes
        if len(members) == 1:
            node = nodes[members[0]]
            return list(node.stmts)
        out: list[ast.stmt] = []
        targets: list[ast.expr | None] = []
        awaitables: list[ast.expr] = []
        for j in members:
            node = nodes[j]
            assert node.awaitable is not None
            out.extend(node.prelude)
            targets.append(node.target)
            awaitables.append(node.awaitable)
        gathered = ast.Await(asyncio_call("gather", *awaitables))
        if all(t is None for t in targets):
            out.append(ast.Expr(value=gathered))
            return out
        placeholder = None
        elts: list[ast.expr] = []
        for target in targets:
            if target is None:
                placeholder = placeholder or self.names.placeholder()
                elts.append(name_node(placeholder, True))
            else:
                elts.append(as_store(target))
        out.append(ast.Assign(targets=[ast.Tuple(elts=elts, ctx=ast.Store())], value=gathered))
        return out
