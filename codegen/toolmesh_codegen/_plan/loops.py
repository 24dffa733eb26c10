"""Pass 3, loops: loop distribution of one ``for`` loop. Statements that carry state
from one iteration to the next stay in a loop; every other statement becomes one stage
over all iterations (a comprehension, a gather of calls, or a gather over a
per-iteration helper).
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from toolmesh_codegen._dataflow import (
    Effects,
    assigned_names,
    count_awaits,
    definitely_assigned,
    exits,
    exposed_reads,
    free_reads,
    mutated_roots,
    side_effect_free,
    target_names,
)
from toolmesh_codegen._plan.build import (
    as_load,
    as_store,
    call_base,
    gather_over,
    is_unit,
    name_node,
    names_tuple,
    parameters,
    raises,
    trip_count,
    unit_parts,
)
from toolmesh_codegen._plan.nodes import INF, Node, NodeKind
from toolmesh_codegen._policy import STDOUT
from toolmesh_codegen.validate import is_mesh_call

if TYPE_CHECKING:
    from toolmesh_codegen._plan.blocks import Function


class LoopSplitter:
    """Loop distribution of one ``for`` loop into stages over all iterations."""

    def __init__(self, function: Function, loop: ast.For, defined: frozenset[str]) -> None:
        self.f = function
        self.loop = loop
        self.defined = defined
        self.filtered: ast.expr | None = None

    def split(self) -> list[Node] | None:
        loop = self.loop
        if loop.orelse or not isinstance(loop.target, (ast.Name, ast.Tuple, ast.List)):
            return None
        if any(isinstance(n, ast.Starred) for n in ast.walk(loop.target)):
            return None
        tnames = target_names(loop.target)
        body = list(loop.body)
        condition = self._guard(body, tnames)
        self.filtered = condition[0] if condition is not None else None
        if condition is not None:
            body = condition[1]
        if any(exits(s) for s in body) or any(raises(s) for s in body):
            return None
        outside = self.f.read_outside([loop])
        if condition is not None and set(tnames) & outside:
            return None  # after the loop the variable must hold the last item, filtered or not

        effects = [self.f.effects([s]) for s in body]
        written = set().union(*(e.writes for e in effects)) if effects else set()
        carried: set[str] = set()
        bound: frozenset[str] = frozenset(tnames)
        fresh: set[str] = set()
        for stmt in body:
            carried |= exposed_reads([stmt], bound) & written
            for root in mutated_roots(stmt, self.f.impure):
                members = self.f.aliases.members(root)
                if root == STDOUT or not members <= fresh:
                    carried |= members
            bound = definitely_assigned([stmt], bound)
            fresh |= _fresh_defs(stmt)
        sequential: set[int] = set()
        for j, eff in enumerate(effects):
            if (eff.reads | eff.writes) & carried or any(
                i in sequential and effects[i].conflicts(eff) for i in range(j)
            ):
                sequential.add(j)
        parallel = [j for j in range(len(body)) if j not in sequential]
        if not any(count_awaits(body[j]) for j in parallel):
            return None

        seq_stmts = [body[j] for j in sorted(sequential)]
        needed_later = set().union(*(free_reads(s) for s in seq_stmts)) if seq_stmts else set()
        needed_later |= outside
        nodes: list[Node] = []
        items, items_node = self._items(condition[0] if condition else None, tnames)
        if items_node is not None:
            nodes.append(items_node)

        producers: list[_Stage] = []
        for position, j in enumerate(parallel):
            stmt = body[j]
            later = set(needed_later)
            for k in parallel[position + 1 :]:
                later |= free_reads(body[k])
            stage = self._stage(stmt, tnames, producers, items, later)
            if stage is None:
                return None
            nodes.append(stage.node)
            producers.append(stage)

        exports = {n for p in producers for n in p.outputs if n in needed_later}
        # what must hold the last iteration's values after the loop
        after = (exports | set(tnames)) & outside
        groups = _independent_groups(seq_stmts, [effects[j] for j in sorted(sequential)])
        if not groups and after:
            groups = [[]]
        for index, group in enumerate(groups):
            bind = after if index == len(groups) - 1 else set()
            nodes.append(self._residual(group, tnames, producers, items, bind))
        return nodes

    def _guard(
        self, body: list[ast.stmt], tnames: list[str]
    ) -> tuple[ast.expr, list[ast.stmt]] | None:
        """A leading ``if c: continue`` (or a body that is one ``if`` without else) is a
        filter on the items: the loop then runs over the items that pass it."""
        if not body:
            return None
        first = body[0]
        if not isinstance(first, ast.If) or first.orelse:
            return None
        if len(first.body) == 1 and isinstance(first.body[0], ast.Continue):
            test: ast.expr = ast.UnaryOp(op=ast.Not(), operand=first.test)
            rest = body[1:]
        elif len(body) == 1:
            test, rest = first.test, first.body
        else:
            return None
        written = {n for s in rest for n in assigned_names(s)}
        for stmt in rest:
            for root in mutated_roots(stmt, self.f.impure):
                written |= self.f.aliases.members(root)
        if count_awaits(test) or not side_effect_free(test, self.f.pure_helpers):
            return None
        if free_reads(test) & written - set(tnames):
            return None
        return test, rest

    def _items(self, condition: ast.expr | None, tnames: list[str]) -> tuple[ast.expr, Node | None]:
        loop = self.loop
        it = loop.iter
        if condition is None and isinstance(it, ast.Name) and it.id in self.f.list_names:
            return it, None
        base = it.id if isinstance(it, ast.Name) else "_".join(tnames) or "item"
        name = self.f.names.fresh(f"{base}_items" if condition is None else f"selected_{base}")
        if condition is None:
            value: ast.expr = ast.Call(func=name_node("list"), args=[it], keywords=[])
        else:
            value = ast.ListComp(
                elt=as_load(loop.target),
                generators=[
                    ast.comprehension(
                        target=as_store(loop.target), iter=it, ifs=[condition], is_async=0
                    )
                ],
            )
        stmt = ast.Assign(targets=[name_node(name, True)], value=value)
        self.f.list_names.add(name)
        return name_node(name), Node([stmt], self.f.effects([stmt]), NodeKind.PURE)

    def _sources(
        self,
        needs: set[str],
        tnames: list[str],
        producers: Sequence[_Stage],
        items: ast.expr,
        *,
        always_items: bool = False,
    ) -> tuple[ast.expr, ast.expr]:
        """The comprehension target and iterable that bind ``needs`` per iteration."""
        parts: list[tuple[ast.expr, ast.expr]] = []
        if always_items or set(tnames) & needs:
            parts.append((self.loop.target, items))
        # each needed name comes from the last stage that bound it (later ones shadow)
        latest: dict[str, _Stage] = {}
        for producer in producers:
            for name in producer.outputs:
                latest[name] = producer
        chosen = {id(latest[n]) for n in needs if n in latest}
        for producer in producers:
            if producer.list_name and id(producer) in chosen:
                assert producer.pattern is not None
                parts.append((producer.pattern, name_node(producer.list_name)))
        if not parts:
            parts.append((self.loop.target, items))
        if len(parts) == 1:
            return as_store(parts[0][0]), parts[0][1]
        target = ast.Tuple(elts=[as_store(p[0]) for p in parts], ctx=ast.Store())
        iterable = ast.Call(func=name_node("zip"), args=[p[1] for p in parts], keywords=[])
        return target, iterable

    def _stage(
        self,
        stmt: ast.stmt,
        tnames: list[str],
        producers: Sequence[_Stage],
        items: ast.expr,
        later: set[str],
    ) -> _Stage | None:
        private = set(tnames) | {n for p in producers for n in p.outputs}
        reads = free_reads(stmt)
        needs = reads & private
        outer_reads = reads - private
        target, iterable = self._sources(needs, tnames, producers, items)
        list_reads = {n.id for n in ast.walk(iterable) if isinstance(n, ast.Name)}
        f = self.f

        simple_target = (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and (
                isinstance(stmt.targets[0], ast.Name)
                or (
                    isinstance(stmt.targets[0], ast.Tuple)
                    and all(isinstance(e, ast.Name) for e in stmt.targets[0].elts)
                )
            )
        )
        if is_unit(stmt) and (simple_target or isinstance(stmt, ast.Expr)):
            unit_target, awaitable = unit_parts(stmt)
            if side_effect_free(_strip_calls(awaitable), f.pure_helpers):
                outputs = target_names(unit_target) if unit_target is not None else []
                base = outputs[0] if outputs else call_base(awaitable)
                list_name = f.names.fresh(f"{base}_list") if outputs else None
                gathered = gather_over(awaitable, target, iterable)
                written = frozenset({list_name}) if list_name else frozenset()
                effects = Effects(frozenset(outer_reads | list_reads), written)
                node = Node(
                    [_assign_or_expr(list_name, ast.Await(gathered))],
                    effects,
                    NodeKind.CALL,
                    1,
                    1,
                    target=name_node(list_name, True) if list_name else None,
                    awaitable=gathered,
                    label=base,
                    over=", ".join(tnames),
                )
                pattern = as_store(unit_target) if unit_target is not None else None
                return _Stage(node, outputs, list_name, pattern)

        if (
            simple_target
            and isinstance(stmt, ast.Assign)
            and not count_awaits(stmt)
            and side_effect_free(stmt.value, f.pure_helpers)
        ):
            outputs = target_names(stmt.targets[0])
            list_name = f.names.fresh(f"{outputs[0]}_list")
            comp = ast.ListComp(
                elt=stmt.value,
                generators=[ast.comprehension(target=target, iter=iterable, ifs=[], is_async=0)],
            )
            new = ast.Assign(targets=[name_node(list_name, True)], value=comp)
            effects = Effects(frozenset(outer_reads | list_reads), frozenset({list_name}))
            return _Stage(
                Node([new], effects, NodeKind.PURE), outputs, list_name, as_store(stmt.targets[0])
            )

        # anything else runs in a per-iteration helper
        bound_here = assigned_names(stmt)
        params = sorted(needs)
        outputs = sorted(n for n in bound_here if n in later)
        after = definitely_assigned([stmt], params)
        if any(o not in after for o in outputs):
            return None
        label = f.names.fresh("per_" + (tnames[0] if tnames else "item"))
        inner = f.block([stmt], frozenset(self.defined | set(params)))
        body = list(inner.stmts)
        if outputs:
            body.append(ast.Return(value=names_tuple(outputs, False)))
        is_async = count_awaits(stmt) > 0
        definition: ast.stmt
        if is_async:
            definition = ast.AsyncFunctionDef(
                name=label, args=parameters(params), body=body, decorator_list=[], returns=None,
                type_comment=None,
            )  # fmt: skip
        else:
            definition = ast.FunctionDef(
                name=label, args=parameters(params), body=body, decorator_list=[], returns=None,
                type_comment=None,
            )  # fmt: skip
        call = ast.Call(func=name_node(label), args=[name_node(p) for p in params], keywords=[])
        list_name = f.names.fresh(f"{outputs[0]}_list" if outputs else f"{label}_results")
        pattern = names_tuple(outputs, True) if outputs else None
        effects = Effects(
            frozenset(self.f.effects([stmt], exposed=True).reads - private | list_reads),
            frozenset({list_name}),
        )
        if is_async:
            gathered = gather_over(call, target, iterable)
            node = Node(
                [definition, _assign_or_expr(list_name if outputs else None, ast.Await(gathered))],
                effects,
                NodeKind.CALL if inner.rounds == 1 else NodeKind.OPAQUE,
                inner.rounds,
                inner.critical_path,
                target=name_node(list_name, True) if outputs else None,
                awaitable=gathered,
                prelude=[definition],
                label=label,
                over=", ".join(tnames),
            )
            if node.kind is NodeKind.OPAQUE:
                node.stmts = [
                    definition,
                    _assign_or_expr(list_name if outputs else None, ast.Await(gathered)),
                ]
                node.wrap = lambda: True
        else:
            comp = ast.ListComp(
                elt=call,
                generators=[ast.comprehension(target=target, iter=iterable, ifs=[], is_async=0)],
            )
            node = Node(
                [definition, _assign_or_expr(list_name if outputs else None, comp)],
                effects,
                NodeKind.PURE,
            )
        return _Stage(node, outputs, list_name if outputs else None, pattern)

    def _residual(
        self,
        seq_stmts: list[ast.stmt],
        tnames: list[str],
        producers: Sequence[_Stage],
        items: ast.expr,
        exports: set[str],
    ) -> Node:
        needs = set(exports)
        for stmt in seq_stmts:
            needs |= free_reads(stmt)
        target, iterable = self._sources(needs, tnames, producers, items)
        loop = ast.For(target=target, iter=iterable, body=seq_stmts or [ast.Pass()], orelse=[])
        ast.copy_location(loop, self.loop)
        list_reads = {n.id for n in ast.walk(iterable) if isinstance(n, ast.Name)}
        inner_defined = self.defined | set(tnames) | exports
        private = {n for p in producers for n in p.outputs}
        if not any(count_awaits(s) for s in seq_stmts):
            eff = self.f.effects([loop], exposed=True)
            effects = Effects(eff.reads | list_reads, eff.writes)
            return Node([loop], effects, NodeKind.PURE)
        body = self.f.block(loop.body, frozenset(inner_defined))
        loop.body = body.stmts or [ast.Pass()]
        eff = self.f.effects(seq_stmts, exposed=True)
        effects = Effects(
            frozenset((eff.reads - private - set(tnames)) | list_reads),
            frozenset(eff.writes | set(target_names(target)) | exports),
        )
        trips = trip_count(self.loop) if self.filtered is None else None
        weight = INF if trips is None else trips * body.rounds
        cp = INF if trips is None else trips * body.critical_path
        return Node([loop], effects, NodeKind.OPAQUE, weight, cp, label="loop")


def _independent_groups(stmts: list[ast.stmt], effects: list[Effects]) -> list[list[ast.stmt]]:
    """Split the statements that must stay in a loop into loops of their own when they
    share nothing (e.g. ``print`` lines and an unrelated ``append``), in order."""
    groups: list[list[int]] = []
    for j in range(len(stmts)):
        touching = [
            g
            for g in groups
            if any(effects[k].conflicts(effects[j]) or effects[j].conflicts(effects[k]) for k in g)
        ]
        merged = sorted({k for g in touching for k in g} | {j})
        groups = [g for g in groups if g not in touching]
        groups.append(merged)
    groups.sort(key=lambda g: g[0])
    return [[stmts[k] for k in g] for g in groups]


@dataclass
class _Stage:
    node: Node
    outputs: list[str]
    list_name: str | None
    pattern: ast.expr | None


def _fresh_defs(stmt: ast.stmt) -> set[str]:
    """Names a statement binds to a brand-new object (safe to mutate within the iteration)."""
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
        target = stmt.targets[0]
        value = stmt.value
        fresh = isinstance(
            value, (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp)
        ) or (isinstance(value, ast.Await) and is_mesh_call(value.value))
        if fresh and isinstance(target, ast.Name):
            return {target.id}
    return set()


def _strip_calls(awaitable: ast.expr) -> ast.expr:
    """The arguments of a mesh call or gather, for side-effect checks (the call itself is not one)."""
    if isinstance(awaitable, ast.Call):
        return ast.Tuple(
            elts=[*awaitable.args[1:], *(k.value for k in awaitable.keywords)], ctx=ast.Load()
        )
    return awaitable


def _assign_or_expr(name: str | None, value: ast.expr) -> ast.stmt:
    if name is None:
        return ast.Expr(value=value)
    return ast.Assign(targets=[name_node(name, True)], value=value)
