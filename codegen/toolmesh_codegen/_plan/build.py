"""The AST the passes build and the statement shapes they recognise: fresh names,
``asyncio.gather`` and ``ensure_future`` calls, and the "one awaited call" unit.

Kept apart so every pass writes the same shapes the same way.
"""

from __future__ import annotations

import ast
import copy
import re
from collections.abc import Sequence

from toolmesh_codegen._dataflow import count_awaits, is_gather_call, iter_scope
from toolmesh_codegen.validate import is_mesh_call


class Names:
    """Fresh, readable identifiers that collide with nothing in the program."""

    def __init__(self, tree: ast.AST) -> None:
        self.used: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                self.used.add(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.used.add(node.name)
            elif isinstance(node, ast.arg):
                self.used.add(node.arg)
            elif isinstance(node, ast.alias):
                self.used.add(node.asname or node.name)
        self.used |= {"asyncio", "toolmesh", "math", "zip", "list", "set", "print"}

    def fresh(self, base: str) -> str:
        base = re.sub(r"\W+", "_", base).strip("_") or "value"
        if base[0].isdigit():
            base = f"v_{base}"
        candidate, n = base, 2
        while candidate in self.used:
            candidate, n = f"{base}_{n}", n + 1
        self.used.add(candidate)
        return candidate

    def placeholder(self) -> str:
        if "_" not in self.used:
            return "_"
        return self.fresh("unused")


def name_node(id_: str, store: bool = False) -> ast.Name:
    return ast.Name(id=id_, ctx=ast.Store() if store else ast.Load())


def _with_context(target: ast.expr, context: type[ast.expr_context]) -> ast.expr:
    target = copy.deepcopy(target)
    for node in ast.walk(target):
        if isinstance(node, (ast.Name, ast.Tuple, ast.List, ast.Subscript, ast.Starred)):
            node.ctx = context()
    return target


def as_store(target: ast.expr) -> ast.expr:
    """A copy of ``target`` to assign to."""
    return _with_context(target, ast.Store)


def as_load(target: ast.expr) -> ast.expr:
    """A copy of ``target`` to read."""
    return _with_context(target, ast.Load)


def names_tuple(names: Sequence[str], store: bool) -> ast.expr:
    if len(names) == 1:
        return name_node(names[0], store)
    return ast.Tuple(
        elts=[name_node(n, store) for n in names], ctx=ast.Store() if store else ast.Load()
    )


def asyncio_call(attr: str, *args: ast.expr) -> ast.Call:
    return ast.Call(
        func=ast.Attribute(value=name_node("asyncio"), attr=attr, ctx=ast.Load()),
        args=list(args),
        keywords=[],
    )


def gather_over(element: ast.expr, target: ast.expr, iterable: ast.expr) -> ast.Call:
    """``asyncio.gather(*[element for target in iterable])``."""
    comp = ast.ListComp(
        elt=element,
        generators=[ast.comprehension(target=as_store(target), iter=iterable, ifs=[], is_async=0)],
    )
    return asyncio_call("gather", ast.Starred(value=comp, ctx=ast.Load()))


def call_base(call: ast.expr) -> str:
    if is_mesh_call(call):
        assert isinstance(call, ast.Call)
        first = call.args[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return first.value
    if is_gather_call(call):
        assert isinstance(call, ast.Call)
        for sub in ast.walk(call):
            if sub is not call and isinstance(sub, ast.Call) and is_mesh_call(sub):
                return call_base(sub) + "_all"
        return "results"
    return "result"


def parameters(params: Sequence[str]) -> ast.arguments:
    return ast.arguments(
        posonlyargs=[],
        args=[ast.arg(arg=p) for p in params],
        vararg=None,
        kwonlyargs=[],
        kw_defaults=[],
        kwarg=None,
        defaults=[],
    )


COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def is_unit(stmt: ast.stmt) -> bool:
    """``target = await call`` or ``await call``: one round, nothing else."""
    value: ast.expr | None = None
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
        if count_awaits(stmt.targets[0]):
            return False
        value = stmt.value
    elif (isinstance(stmt, ast.AnnAssign) and stmt.value is not None) or isinstance(stmt, ast.Expr):
        value = stmt.value
    if not isinstance(value, ast.Await):
        return False
    inner = value.value
    return (is_mesh_call(inner) or is_gather_call(inner)) and not count_awaits(inner)


def unit_parts(stmt: ast.stmt) -> tuple[ast.expr | None, ast.expr]:
    if isinstance(stmt, ast.Assign):
        assert isinstance(stmt.value, ast.Await)
        return stmt.targets[0], stmt.value.value
    if isinstance(stmt, ast.AnnAssign):
        assert isinstance(stmt.value, ast.Await)
        return stmt.target, stmt.value.value
    assert isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Await)
    return None, stmt.value.value


def child_blocks(stmt: ast.stmt) -> list[list[ast.stmt]]:
    if isinstance(stmt, (ast.If, ast.For, ast.While)):
        return [stmt.body, stmt.orelse]
    return []


def raises(stmt: ast.stmt) -> bool:
    return any(isinstance(n, ast.Raise) for n in iter_scope(stmt))


def trip_count(stmt: ast.stmt) -> int | None:
    if not isinstance(stmt, ast.For):
        return None
    it = stmt.iter
    if isinstance(it, (ast.List, ast.Tuple)) and not any(
        isinstance(e, ast.Starred) for e in it.elts
    ):
        return len(it.elts)
    if (
        isinstance(it, ast.Call)
        and isinstance(it.func, ast.Name)
        and it.func.id == "range"
        and not it.keywords
        and 1 <= len(it.args) <= 3
    ):
        try:
            values = [ast.literal_eval(a) for a in it.args]
        except ValueError:
            return None
        if all(isinstance(v, int) for v in values):
            return len(range(*values))
    return None
