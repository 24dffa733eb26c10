"""Pass 3, blocks: each block of ``solve`` becomes scheduler nodes (statements, loop
stages, awaitable forms of ``if``s and loops), with the facts about the whole function
the passes share (aliases, where every statement sits, who reads what afterwards).
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Sequence

from toolmesh_codegen._dataflow import (
    ALL,
    AliasClasses,
    Effects,
    assigned_names,
    count_awaits,
    definitely_assigned,
    exits,
    exposed_reads,
    free_reads,
    is_gather_call,
    iter_scope,
    target_names,
)
from toolmesh_codegen._plan.build import (
    COMPREHENSIONS,
    Names,
    call_base,
    child_blocks,
    is_unit,
    name_node,
    names_tuple,
    parameters,
    raises,
    trip_count,
    unit_parts,
)
from toolmesh_codegen._plan.loops import LoopSplitter
from toolmesh_codegen._plan.nodes import INF, Node, NodeKind, Schedule
from toolmesh_codegen._plan.schedule import Scheduler
from toolmesh_codegen.validate import is_mesh_call


class Function:
    """Schedules the blocks of ``solve``; shared facts about the whole function."""

    def __init__(
        self,
        names: Names,
        body: Sequence[ast.stmt],
        impure_helpers: frozenset[str],
        pure_helpers: frozenset[str],
    ) -> None:
        self.names = names
        self.impure = impure_helpers
        self.pure_helpers = pure_helpers
        self.aliases = AliasClasses.of(body)
        # where every statement sits: its block and the statement that holds that block
        self.where: dict[int, tuple[Sequence[ast.stmt], ast.stmt | None]] = {}
        self._locate(body, None)
        self.everything: set[str] = set()
        for stmt in body:
            self.everything |= free_reads(stmt)
        self.list_names = _list_valued_names(body)

    # -- facts --------------------------------------------------------------------------

    def effects(self, stmts: Sequence[ast.stmt], *, exposed: bool = False) -> Effects:
        return Effects.of(stmts, self.aliases, self.impure, exposed_only=exposed)

    def _locate(self, block: Sequence[ast.stmt], parent: ast.stmt | None) -> None:
        for stmt in block:
            self.where[id(stmt)] = (block, parent)
            for child in child_blocks(stmt):
                self._locate(child, stmt)

    def read_outside(self, inside: Sequence[ast.stmt]) -> set[str]:
        """Names whose values as ``inside`` leaves them other code of ``solve`` may read.

        The readers are the statements around ``inside`` and around each statement that
        holds it, counting only what they read before binding it themselves (two loops
        over ``item`` do not observe each other's last item); the headers of holding
        statements; and, for holding loops, the whole body (the next iteration).
        """
        if not inside or id(inside[0]) not in self.where:
            return set(self.everything)
        skip = {id(s) for s in inside}
        block, parent = self.where[id(inside[0])]
        names: set[str] = set()
        for stmt in block:
            if id(stmt) not in skip:
                names |= exposed_reads([stmt])
        while parent is not None:
            if isinstance(parent, (ast.If, ast.While)):
                names |= free_reads(parent.test)
            if isinstance(parent, ast.For):
                names |= free_reads(parent.iter)
                names |= exposed_reads(parent.body, target_names(parent.target))
            elif isinstance(parent, ast.While):
                names |= exposed_reads(parent.body)
            block, grand = self.where[id(parent)]
            for stmt in block:
                if stmt is not parent:
                    names |= exposed_reads([stmt])
            parent = grand
        return names

    # -- blocks -------------------------------------------------------------------------

    def block(self, stmts: Sequence[ast.stmt], defined: frozenset[str]) -> Schedule:
        nodes: list[Node] = []
        current = defined
        for stmt in stmts:
            nodes.extend(self.nodes_for(stmt, current))
            after = definitely_assigned([stmt], current)
            if after is not ALL:  # after a return the rest is unreachable; keep what we know
                current = after
        return Scheduler(self.names, nodes, self.read_outside(stmts)).run()

    def nodes_for(self, stmt: ast.stmt, defined: frozenset[str]) -> list[Node]:
        awaits = count_awaits(stmt)
        if exits(stmt) or isinstance(stmt, ast.Raise) or raises(stmt):
            inline, weight, cp = self.inline(stmt, defined)
            return [Node([inline], self.effects([stmt]), NodeKind.BARRIER, weight, cp)]
        if not awaits:
            return [Node([stmt], self.effects([stmt]), NodeKind.PURE)]
        if is_unit(stmt):
            target, awaitable = unit_parts(stmt)
            label = target_names(target)[0] if target is not None and target_names(target) else ""
            return [
                Node(
                    [stmt],
                    self.effects([stmt]),
                    NodeKind.CALL,
                    1,
                    1,
                    target=target,
                    awaitable=awaitable,
                    label=label or call_base(awaitable),
                )
            ]
        if isinstance(stmt, ast.For):
            staged = LoopSplitter(self, stmt, defined).split()
            if staged is not None:
                return staged
        inline, weight, cp = self.inline(stmt, defined)
        node = Node([inline], self.effects([stmt], exposed=True), NodeKind.OPAQUE, weight, cp)
        node.wrap = lambda: self._wrap(node, stmt, inline, defined)
        node.label = "branch" if isinstance(stmt, ast.If) else "loop"
        return [node]

    def inline(self, stmt: ast.stmt, defined: frozenset[str]) -> tuple[ast.stmt, float, float]:
        """``stmt`` with its inner blocks scheduled; its rounds and critical path."""
        if isinstance(stmt, ast.If):
            inner = defined
            body = self.block(stmt.body, inner)
            orelse = self.block(stmt.orelse, inner)
            new = ast.If(test=stmt.test, body=body.stmts or [ast.Pass()], orelse=orelse.stmts)
            test = count_awaits(stmt.test)
            return (
                ast.copy_location(new, stmt),
                test + max(body.rounds, orelse.rounds),
                test + max(body.critical_path, orelse.critical_path),
            )
        if isinstance(stmt, (ast.For, ast.While)):
            inner = defined
            if isinstance(stmt, ast.For):
                inner = defined | frozenset(target_names(stmt.target))
            body = self.block(stmt.body, inner)
            orelse = self.block(stmt.orelse, defined)
            new_loop = copy.copy(stmt)
            new_loop.body = body.stmts or [ast.Pass()]
            new_loop.orelse = orelse.stmts
            trips = trip_count(stmt)
            head = count_awaits(stmt.iter if isinstance(stmt, ast.For) else stmt.test)
            if body.rounds == 0 and orelse.rounds == 0 and not head:
                return new_loop, 0, 0
            if trips is None or isinstance(stmt, ast.While):
                return new_loop, INF, INF
            return (
                new_loop,
                head + trips * body.rounds + orelse.rounds,
                head + trips * body.critical_path + orelse.critical_path,
            )
        awaits = count_awaits(stmt)
        if any(isinstance(n, COMPREHENSIONS) and count_awaits(n) for n in iter_scope(stmt)):
            return stmt, INF, INF
        return stmt, awaits, awaits

    def _wrap(
        self, node: Node, original: ast.stmt, inline: ast.stmt, defined: frozenset[str]
    ) -> bool:
        """Give an opaque statement an awaitable form: a local ``async def`` returning the
        names it binds that are read elsewhere. False when that would change meaning."""
        written = sorted(assigned_names(original))
        outputs = sorted(set(written) & self.read_outside([original]))
        params = [n for n in written if n in defined]
        exposed = exposed_reads([original]) & set(written)
        if exposed - set(params):
            return False
        bound_after = definitely_assigned([original], params)
        if any(o not in bound_after and o not in params for o in outputs):
            return False
        helper = self.names.fresh(node.label)
        body: list[ast.stmt] = [inline]
        if outputs:
            body.append(ast.Return(value=names_tuple(outputs, False)))
        definition = ast.AsyncFunctionDef(
            name=helper,
            args=parameters(params),
            body=body,
            decorator_list=[],
            returns=None,
            type_comment=None,
        )
        node.prelude = [definition]
        node.awaitable = ast.Call(
            func=name_node(helper), args=[name_node(p) for p in params], keywords=[]
        )
        node.target = names_tuple(outputs, True) if outputs else None
        return True


def _list_valued_names(body: Sequence[ast.stmt]) -> set[str]:
    """Names every assignment of which gives a list (safe to iterate more than once)."""
    verdict: dict[str, bool] = {}
    for stmt in body:
        for node in iter_scope(stmt):
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                listy = _is_listy(node.value)
                for target in targets:
                    if isinstance(target, ast.Name):
                        verdict[target.id] = verdict.get(target.id, True) and listy
                    else:
                        for name in target_names(target):
                            verdict[name] = False
            elif isinstance(node, (ast.For, ast.comprehension, ast.AugAssign)):
                for name in target_names(node.target):
                    verdict[name] = False
    return {n for n, ok in verdict.items() if ok}


def _is_listy(value: ast.expr) -> bool:
    if isinstance(value, ast.Await):
        return is_mesh_call(value.value) or is_gather_call(value.value)
    if isinstance(value, (ast.List, ast.ListComp, ast.Tuple)):
        return True
    return (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id in ("list", "sorted", "tuple")
    )
