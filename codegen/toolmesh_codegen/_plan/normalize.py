"""Pass 1, normalize: every awaited mesh call that can move without changing what is
evaluated before it becomes a statement of its own, ``tmp = await toolmesh.call(...)``.

``[await toolmesh.call(...) for x in xs]`` becomes one ``await asyncio.gather(*[...])``
and ``x = await f() if c else y`` an ``if``, so the later passes see calls only as
whole statements.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Callable, Iterable, Sequence

from toolmesh_codegen._dataflow import count_awaits, is_gather_call, side_effect_free
from toolmesh_codegen._plan.build import (
    COMPREHENSIONS,
    Names,
    asyncio_call,
    call_base,
    is_unit,
    name_node,
    unit_parts,
)
from toolmesh_codegen.validate import is_mesh_call


class _CannotHoist(Exception):
    """An await that cannot move out of its statement without changing the program."""


class Normalizer:
    """Puts every awaited call that can safely move into a statement of its own."""

    def __init__(self, names: Names, pure_helpers: frozenset[str]) -> None:
        self.names = names
        self.pure_helpers = pure_helpers

    def block(self, stmts: Sequence[ast.stmt]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for stmt in stmts:
            out.extend(self.stmt(stmt))
        return out

    def stmt(self, stmt: ast.stmt) -> list[ast.stmt]:
        stmt = self._if_expression(stmt)
        if isinstance(stmt, ast.If):
            stmt.body = self.block(stmt.body)
            stmt.orelse = self.block(stmt.orelse)
            return self._hoist(stmt, [stmt.test], lambda new: setattr(stmt, "test", new[0]))
        if isinstance(stmt, ast.For):
            stmt.body = self.block(stmt.body)
            stmt.orelse = self.block(stmt.orelse)
            return self._hoist(stmt, [stmt.iter], lambda new: setattr(stmt, "iter", new[0]))
        if isinstance(stmt, ast.While):
            stmt.body = self.block(stmt.body)
            stmt.orelse = self.block(stmt.orelse)
            return [stmt]
        if not count_awaits(stmt):
            return [stmt]
        if is_unit(stmt):
            awaited = unit_parts(stmt)[1]
            if not any(isinstance(n, ast.Await) for n in ast.walk(awaited)):
                return [stmt]
        return self._hoist_simple(stmt)

    def _if_expression(self, stmt: ast.stmt) -> ast.stmt:
        """``x = a if c else b`` with awaits in a branch → an ``if`` statement."""
        value = getattr(stmt, "value", None)
        if not isinstance(value, ast.IfExp) or not (
            count_awaits(value.body) or count_awaits(value.orelse)
        ):
            return stmt
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:

            def make(v: ast.expr) -> ast.stmt:
                return ast.Assign(targets=[copy.deepcopy(stmt.targets[0])], value=v)

        elif isinstance(stmt, ast.Return):

            def make(v: ast.expr) -> ast.stmt:
                return ast.Return(value=v)

        else:
            return stmt
        new = ast.If(test=value.test, body=[make(value.body)], orelse=[make(value.orelse)])
        return ast.copy_location(new, stmt)

    def _hoist(
        self, stmt: ast.stmt, exprs: list[ast.expr], put: Callable[[list[ast.expr]], None]
    ) -> list[ast.stmt]:
        if not any(count_awaits(e) for e in exprs):
            return [stmt]
        hoister = _Hoister(self.names, self.pure_helpers)
        try:
            new = [hoister.expr(e) for e in exprs]
        except _CannotHoist:
            return [stmt]
        put(new)
        return [*hoister.prelude, stmt]

    def _hoist_simple(self, stmt: ast.stmt) -> list[ast.stmt]:
        hoister = _Hoister(self.names, self.pure_helpers)
        original = copy.deepcopy(stmt)
        try:
            if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                if any(count_awaits(t) for t in targets) or stmt.value is None:
                    raise _CannotHoist
                stmt.value = hoister.expr(stmt.value)
            elif isinstance(stmt, ast.AugAssign):
                if count_awaits(stmt.target):
                    raise _CannotHoist
                stmt.value = hoister.expr(stmt.value)
            elif isinstance(stmt, (ast.Expr, ast.Return)) and stmt.value is not None:
                stmt.value = hoister.expr(stmt.value)
            elif isinstance(stmt, ast.Assert):
                if stmt.msg is not None and count_awaits(stmt.msg):
                    raise _CannotHoist
                stmt.test = hoister.expr(stmt.test)
            elif isinstance(stmt, ast.Raise):
                if stmt.cause is not None and count_awaits(stmt.cause):
                    raise _CannotHoist
                if stmt.exc is not None:
                    stmt.exc = hoister.expr(stmt.exc)
            else:
                raise _CannotHoist
        except _CannotHoist:
            return [original]
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Name):
            # `await f()` alone: the hoisted statement is all there is
            last = hoister.prelude[-1]
            assert isinstance(last, ast.Assign)
            return [*hoister.prelude[:-1], ast.Expr(value=last.value)]
        if (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.value, ast.Name)
            and hoister.prelude
            and isinstance(hoister.prelude[-1], ast.Assign)
            and _is_temp(hoister.prelude[-1], stmt.value.id)
        ):
            # `x = await f()` with nested awaits in f's arguments: keep the name x
            last = hoister.prelude[-1]
            self.names.used.discard(stmt.value.id)
            return [*hoister.prelude[:-1], ast.Assign(targets=stmt.targets, value=last.value)]
        return [*hoister.prelude, stmt]


def _is_temp(assign: ast.Assign, name: str) -> bool:
    return (
        len(assign.targets) == 1
        and isinstance(assign.targets[0], ast.Name)
        and assign.targets[0].id == name
    )


class _Hoister:
    """Moves awaits out of an expression, in evaluation order, into ``prelude``."""

    def __init__(self, names: Names, pure_helpers: frozenset[str]) -> None:
        self.names = names
        self.pure_helpers = pure_helpers
        self.prelude: list[ast.stmt] = []
        self.effect_seen = False

    def expr(self, node: ast.expr) -> ast.expr:
        if isinstance(node, ast.Await):
            inner = node.value
            if not isinstance(inner, ast.Call):
                raise _CannotHoist
            inner = self._children(inner)
            assert isinstance(inner, ast.Call)
            if self.effect_seen or not (is_mesh_call(inner) or is_gather_call(inner)):
                raise _CannotHoist
            temp = self.names.fresh(call_base(inner) + "_result")
            self.prelude.append(ast.Assign(targets=[name_node(temp, True)], value=ast.Await(inner)))
            return name_node(temp)
        if isinstance(node, (ast.ListComp, ast.SetComp)) and count_awaits(node):
            return self.expr(_comprehension_gather(node))
        if not count_awaits(node):
            self._note_effects(node)
            return node
        if isinstance(node, ast.BoolOp):
            first = self.expr(node.values[0])
            self._lazy(node.values[1:])
            return ast.BoolOp(op=node.op, values=[first, *node.values[1:]])
        if isinstance(node, ast.IfExp):
            test = self.expr(node.test)
            self._lazy([node.body, node.orelse])
            return ast.IfExp(test=test, body=node.body, orelse=node.orelse)
        if isinstance(node, ast.Compare):
            left = self.expr(node.left)
            first = self.expr(node.comparators[0])
            self._lazy(node.comparators[1:])
            return ast.Compare(left=left, ops=node.ops, comparators=[first, *node.comparators[1:]])
        if isinstance(node, (ast.Lambda, *COMPREHENSIONS)):
            raise _CannotHoist
        if isinstance(node, ast.Dict):
            keys: list[ast.expr | None] = []
            values: list[ast.expr] = []
            for key, value in zip(node.keys, node.values, strict=True):
                keys.append(self.expr(key) if key is not None else None)
                values.append(self.expr(value))
            return ast.Dict(keys=keys, values=values)
        new = self._children(node)
        if isinstance(new, ast.Call) and not side_effect_free(
            ast.Call(func=new.func, args=[], keywords=[]), self.pure_helpers
        ):
            self.effect_seen = True
        return new

    def _children(self, node: ast.expr) -> ast.expr:
        """A copy of ``node`` with its sub-expressions hoisted in field order."""
        new = copy.copy(node)
        for name, value in ast.iter_fields(node):
            if isinstance(value, ast.expr):
                setattr(new, name, self.expr(value))
            elif isinstance(value, list):
                items: list[ast.AST] = []
                for item in value:
                    if isinstance(item, ast.expr):
                        items.append(self.expr(item))
                    elif isinstance(item, ast.keyword):
                        items.append(ast.keyword(arg=item.arg, value=self.expr(item.value)))
                    else:
                        items.append(item)
                setattr(new, name, items)
        return new

    def _lazy(self, parts: Iterable[ast.expr]) -> None:
        for part in parts:
            if count_awaits(part):
                raise _CannotHoist
            self._note_effects(part)

    def _note_effects(self, node: ast.expr) -> None:
        if not side_effect_free(node, self.pure_helpers):
            self.effect_seen = True


def _comprehension_gather(node: ast.ListComp | ast.SetComp) -> ast.expr:
    """``[await call for x in xs if c]`` → ``await asyncio.gather(*[call for x in xs if c])``."""
    if len(node.generators) != 1:
        raise _CannotHoist
    gen = node.generators[0]
    element = node.elt
    if not (isinstance(element, ast.Await) and is_mesh_call(element.value)):
        raise _CannotHoist
    if count_awaits(element.value) or any(count_awaits(c) for c in gen.ifs):
        raise _CannotHoist
    comp = ast.ListComp(elt=element.value, generators=[gen])
    gathered = ast.Await(asyncio_call("gather", ast.Starred(value=comp, ctx=ast.Load())))
    if isinstance(node, ast.SetComp):
        return ast.Call(func=name_node("set"), args=[gathered], keywords=[])
    return gathered
