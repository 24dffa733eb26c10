"""The parallelizer: a serial ``async def solve(...)`` becomes an equivalent program whose
independent mesh calls run concurrently. Pure AST → AST, deterministic, no LLM.

How, in four passes over ``solve``:

1. **Normalize.** Every awaited mesh call becomes a statement of its own,
   ``tmp = await toolmesh.call(...)``, when that does not change what is evaluated
   before it (no side effect precedes it in the statement, it is not behind ``and``/
   ``or``/``if-else``). ``[await toolmesh.call(...) for x in xs]`` becomes one
   ``await asyncio.gather(*[...])``. ``x = await f() if c else y`` becomes an ``if``.
2. **Rename.** A name assigned several times in a block (``result = ...`` reused for
   unrelated calls) gets a fresh name per earlier assignment, so reuse of a variable
   does not order calls that share nothing else.
3. **Loops.** A ``for`` loop is split (loop distribution): statements that carry state
   from one iteration to the next (accumulators, appends, ``print``) stay in a loop;
   every other statement becomes one *stage* over all iterations: a list
   comprehension, ``await asyncio.gather(*[toolmesh.call(...) for ...])``, or a gather
   over a per-iteration helper for ``if``s and inner loops.
4. **Schedule.** In each block, statements are nodes of a dependency graph (read
   after write, write after read, write after write on names, with mutations widened
   to every name that may alias the object). Nodes run as soon as their inputs are
   ready: calls that become ready together are one ``asyncio.gather`` (one *round*);
   an ``if`` or loop that needs several rounds of its own runs as a task
   (``asyncio.ensure_future``) awaited right before its first dependent, or in place
   when nothing overlaps it. ``return``/``break``/``continue``/``raise`` are barriers:
   everything before finishes first, nothing after is started early.

The result has the same return value and raises the same exception as the serial
program whenever one operation fails; when several independent operations would
fail, the parallel program reports one of them (the serial one stops at the first).
The number of rounds is the critical path of the dependency graph, where an ``if``
or a loop whose iterations depend on each other is one node as long as its own
critical path.
"""

from __future__ import annotations

import ast
import copy
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

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
    mutated_roots,
    side_effect_free,
    target_names,
)
from toolmesh_codegen._errors import ValidationError
from toolmesh_codegen._policy import STDOUT
from toolmesh_codegen.validate import ENTRY, check, is_mesh_call

__all__ = ["Plan", "parallelize", "plan"]

INF = math.inf


@dataclass(frozen=True, slots=True)
class Plan:
    """The parallel program and what the rewrite found.

    ``rounds`` is the number of sequential rounds of mesh calls in the parallel program
    along its longest path (``None`` when a loop's trip count is only known at run
    time); ``critical_path`` is the longest chain of dependent calls in the dependency
    graph; they are equal unless a multi-round ``if``/loop could not be run as a task.
    ``serial_rounds`` is the number of awaited calls along the serial program's path
    (``None`` when loops make it data-dependent).
    """

    source: str
    rounds: int | None
    critical_path: int | None
    serial_rounds: int | None
    calls: int


def parallelize(source: str) -> str:
    """The parallel equivalent of a serial program (see the module docstring).

    Raises:
        ValidationError: ``source`` breaks the serial contract (structure only; the
            registry is not consulted).
    """
    return plan(source).source


def plan(source: str) -> Plan:
    """Parallelize ``source`` and report rounds and critical path.

    Raises:
        ValidationError: ``source`` breaks the serial contract.
    """
    program = check(source, None, serial=True)
    tree = copy.deepcopy(program.tree)
    solve = next(s for s in tree.body if isinstance(s, ast.AsyncFunctionDef) and s.name == ENTRY)
    names = _Names(tree)
    module_names = {n for s in tree.body for n in assigned_names(s)} | {
        a.asname or a.name for s in tree.body if isinstance(s, ast.Import) for a in s.names
    }
    helpers = {s.name: s for s in tree.body if isinstance(s, ast.FunctionDef)}
    impure = _impure_helpers(helpers)
    pure_helpers = frozenset(helpers) - impure

    body = _Normalizer(names, pure_helpers).block(solve.body)
    body = _Renamer(names, body).block(body)
    solve.body = body or [ast.Pass()]
    function = _Function(names, body, impure, pure_helpers)
    params = {a.arg for a in [*solve.args.posonlyargs, *solve.args.args, *solve.args.kwonlyargs]}
    schedule = function.block(body, frozenset(params | module_names))
    solve.body = schedule.stmts or [ast.Pass()]
    serial_rounds = _serial_rounds(program.tree)
    uses_asyncio = any(isinstance(n, ast.Name) and n.id == "asyncio" for n in ast.walk(solve))
    if uses_asyncio and not any(
        isinstance(s, ast.Import) and any(a.name == "asyncio" for a in s.names) for s in tree.body
    ):
        first = 1 if _has_docstring(tree) else 0
        tree.body.insert(first, ast.Import(names=[ast.alias(name="asyncio")]))
    ast.fix_missing_locations(tree)
    output = _wrap_long_gathers(ast.unparse(tree) + "\n")
    try:
        check(output, None, serial=False)
    except ValidationError as exc:  # pragma: no cover - a bug in the rewrite
        raise AssertionError(f"the parallelizer produced an invalid program: {exc}") from exc
    calls = sum(is_mesh_call(n) for n in ast.walk(program.tree))
    return Plan(
        source=output,
        rounds=_finite(schedule.rounds),
        critical_path=_finite(schedule.critical_path),
        serial_rounds=serial_rounds,
        calls=calls,
    )


def _wrap_long_gathers(source: str, width: int = 99) -> str:
    """Put the awaitables of a long ``asyncio.gather(...)`` line one per line.

    ``ast.unparse`` writes every statement on one line; a round of several calls reads
    better as a column.
    """
    lines = source.splitlines()
    replacements: dict[int, list[str]] = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.Assign, ast.Expr)) or node.lineno != node.end_lineno:
            continue
        line = lines[node.lineno - 1]
        value = node.value
        if len(line) <= width or not (isinstance(value, ast.Await) and is_gather_call(value.value)):
            continue
        assert isinstance(value.value, ast.Call)
        indent = line[: len(line) - len(line.lstrip())]
        head = ""
        if isinstance(node, ast.Assign):
            head = (
                " = ".join(
                    ", ".join(ast.unparse(e) for e in t.elts)
                    if isinstance(t, ast.Tuple)
                    else ast.unparse(t)
                    for t in node.targets
                )
                + " = "
            )
        args = [f"{indent}    {ast.unparse(arg)}," for arg in value.value.args]
        replacements[node.lineno] = [f"{indent}{head}await asyncio.gather(", *args, f"{indent})"]
    out: list[str] = []
    for number, line in enumerate(lines, start=1):
        out.extend(replacements.get(number, [line]))
    return "\n".join(out) + "\n"


def _finite(value: float) -> int | None:
    return None if value == INF else int(value)


def _has_docstring(tree: ast.Module) -> bool:
    return bool(
        tree.body
        and isinstance(tree.body[0], ast.Expr)
        and isinstance(tree.body[0].value, ast.Constant)
        and isinstance(tree.body[0].value.value, str)
    )


def _serial_rounds(tree: ast.Module) -> int | None:
    """Awaits along the serial program when it has no loops over calls (else ``None``)."""
    solve = next(s for s in tree.body if isinstance(s, ast.AsyncFunctionDef) and s.name == ENTRY)
    for node in iter_scope(solve):
        if isinstance(node, (ast.For, ast.While, *_COMPREHENSIONS)) and count_awaits(node):
            return None
    return _max_path_awaits(solve.body)


def _max_path_awaits(stmts: Sequence[ast.stmt]) -> int:
    total = 0
    for stmt in stmts:
        if isinstance(stmt, ast.If):
            total += count_awaits(stmt.test) + max(
                _max_path_awaits(stmt.body), _max_path_awaits(stmt.orelse)
            )
        else:
            total += count_awaits(stmt)
    return total


_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _impure_helpers(helpers: dict[str, ast.FunctionDef]) -> frozenset[str]:
    """Module-level helpers that may change their arguments, globals or the output."""
    impure: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, helper in helpers.items():
            if name in impure:
                continue
            local = {n for s in helper.body for n in assigned_names(s)}
            params = {a.arg for a in [*helper.args.posonlyargs, *helper.args.args]}
            aliases = AliasClasses.of(helper.body)
            for stmt in helper.body:
                roots = mutated_roots(stmt, frozenset(impure))
                widened = {m for r in roots for m in aliases.members(r)}
                if STDOUT in roots or widened - (local - params):
                    impure.add(name)
                    changed = True
                    break
    return frozenset(impure)


# -- names ----------------------------------------------------------------------------


class _Names:
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


def _name(id_: str, store: bool = False) -> ast.Name:
    return ast.Name(id=id_, ctx=ast.Store() if store else ast.Load())


def _store(target: ast.expr) -> ast.expr:
    target = copy.deepcopy(target)
    for node in ast.walk(target):
        if isinstance(node, (ast.Name, ast.Tuple, ast.List, ast.Subscript, ast.Starred)):
            node.ctx = ast.Store()
    return target


def _load(target: ast.expr) -> ast.expr:
    target = copy.deepcopy(target)
    for node in ast.walk(target):
        if isinstance(node, (ast.Name, ast.Tuple, ast.List, ast.Subscript, ast.Starred)):
            node.ctx = ast.Load()
    return target


def _tuple(names: Sequence[str], store: bool) -> ast.expr:
    if len(names) == 1:
        return _name(names[0], store)
    return ast.Tuple(
        elts=[_name(n, store) for n in names], ctx=ast.Store() if store else ast.Load()
    )


def _asyncio(attr: str, *args: ast.expr) -> ast.Call:
    return ast.Call(
        func=ast.Attribute(value=_name("asyncio"), attr=attr, ctx=ast.Load()),
        args=list(args),
        keywords=[],
    )


def _gather_over(element: ast.expr, target: ast.expr, iterable: ast.expr) -> ast.Call:
    """``asyncio.gather(*[element for target in iterable])``."""
    comp = ast.ListComp(
        elt=element,
        generators=[ast.comprehension(target=_store(target), iter=iterable, ifs=[], is_async=0)],
    )
    return _asyncio("gather", ast.Starred(value=comp, ctx=ast.Load()))


def _call_base(call: ast.expr) -> str:
    if is_mesh_call(call):
        assert isinstance(call, ast.Call)
        first = call.args[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return first.value
    if is_gather_call(call):
        assert isinstance(call, ast.Call)
        for sub in ast.walk(call):
            if sub is not call and isinstance(sub, ast.Call) and is_mesh_call(sub):
                return _call_base(sub) + "_all"
        return "results"
    return "result"


# -- pass 1: normalize ------------------------------------------------------------------


class _CannotHoist(Exception):
    """An await that cannot move out of its statement without changing the program."""


class _Normalizer:
    """Puts every awaited call that can safely move into a statement of its own."""

    def __init__(self, names: _Names, pure_helpers: frozenset[str]) -> None:
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
        if _is_unit(stmt):
            awaited = _unit_parts(stmt)[1]
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

    def __init__(self, names: _Names, pure_helpers: frozenset[str]) -> None:
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
            temp = self.names.fresh(_call_base(inner) + "_result")
            self.prelude.append(ast.Assign(targets=[_name(temp, True)], value=ast.Await(inner)))
            return _name(temp)
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
        if isinstance(node, (ast.Lambda, *_COMPREHENSIONS)):
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
    gathered = ast.Await(_asyncio("gather", ast.Starred(value=comp, ctx=ast.Load())))
    if isinstance(node, ast.SetComp):
        return ast.Call(func=_name("set"), args=[gathered], keywords=[])
    return gathered


def _is_unit(stmt: ast.stmt) -> bool:
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


def _unit_parts(stmt: ast.stmt) -> tuple[ast.expr | None, ast.expr]:
    if isinstance(stmt, ast.Assign):
        assert isinstance(stmt.value, ast.Await)
        return stmt.targets[0], stmt.value.value
    if isinstance(stmt, ast.AnnAssign):
        assert isinstance(stmt.value, ast.Await)
        return stmt.target, stmt.value.value
    assert isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Await)
    return None, stmt.value.value


# -- pass 2: rename reused names -----------------------------------------------------------


class _Renamer:
    """Gives each earlier assignment of a reused name a name of its own (SSA-like),
    so ``result = await f(); ...; result = await g()`` does not order f before g."""

    def __init__(self, names: _Names, body: Sequence[ast.stmt]) -> None:
        self.names = names
        self.sites: Counter[str] = Counter()
        self.unsafe: set[str] = set()
        for stmt in body:
            for node in iter_scope(stmt):
                if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
                    self.sites[node.id] += 1
                elif isinstance(node, ast.AugAssign):
                    self.unsafe |= set(target_names(node.target))
                elif isinstance(node, ast.Lambda):
                    self.unsafe |= free_reads(node)
                elif isinstance(node, (ast.For, ast.comprehension)):
                    self.unsafe |= set(target_names(node.target))
            self.unsafe |= mutated_roots(stmt, frozenset())
        aliases = AliasClasses.of(body)
        self.unsafe = {m for n in self.unsafe for m in aliases.members(n)}

    def block(self, stmts: list[ast.stmt]) -> list[ast.stmt]:
        for stmt in stmts:
            for child_block in _child_blocks(stmt):
                child_block[:] = self.block(child_block)
        defs: dict[str, list[int]] = {}
        for index, stmt in enumerate(stmts):
            for name in _simple_def_names(stmt):
                defs.setdefault(name, []).append(index)
        for name, where in sorted(defs.items()):
            if (
                len(where) < 2
                or name in self.unsafe
                or self.sites[name] != len(where)
                or not any(_is_unit(stmts[i]) for i in where)
            ):
                continue
            for k, index in enumerate(where[:-1]):
                new = self.names.fresh(f"{name}_{k + 1}")
                _rename_target(stmts[index], name, new)
                for later in stmts[index + 1 : where[k + 1] + 1]:
                    _rename_loads(later, name, new)
        return stmts


def _child_blocks(stmt: ast.stmt) -> list[list[ast.stmt]]:
    if isinstance(stmt, (ast.If, ast.For, ast.While)):
        return [stmt.body, stmt.orelse]
    return []


def _simple_def_names(stmt: ast.stmt) -> list[str]:
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
        target = stmt.targets[0]
        if isinstance(target, ast.Name) or (
            isinstance(target, ast.Tuple) and all(isinstance(e, ast.Name) for e in target.elts)
        ):
            return target_names(target)
    if (
        isinstance(stmt, ast.AnnAssign)
        and stmt.value is not None
        and isinstance(stmt.target, ast.Name)
    ):
        return [stmt.target.id]
    return []


def _rename_target(stmt: ast.stmt, old: str, new: str) -> None:
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [getattr(stmt, "target", None)]
    for target in targets:
        for node in ast.walk(target) if target is not None else ():
            if isinstance(node, ast.Name) and node.id == old:
                node.id = new


def _rename_loads(node: ast.AST, old: str, new: str) -> None:
    """Rename reads of ``old`` in ``node``, leaving comprehensions that bind it alone."""
    if isinstance(node, _COMPREHENSIONS):
        bound = {n for g in node.generators for n in target_names(g.target)}
        if old in bound:
            _rename_loads(node.generators[0].iter, old, new)
            return
    if isinstance(node, ast.Name) and node.id == old and isinstance(node.ctx, ast.Load):
        node.id = new
        return
    for child in ast.iter_child_nodes(node):
        _rename_loads(child, old, new)


# -- passes 3 and 4: loops and scheduling ---------------------------------------------------


@dataclass
class _Schedule:
    stmts: list[ast.stmt]
    rounds: float
    critical_path: float


@dataclass
class _Node:
    """One statement (or loop stage) of a block, as the scheduler sees it."""

    stmts: list[ast.stmt]
    effects: Effects
    kind: str  # "pure", "call" (one round, awaitable), "opaque", "barrier"
    weight: float = 0.0  # rounds when it runs
    cp: float = 0.0  # its own critical path
    target: ast.expr | None = None
    awaitable: ast.expr | None = None
    prelude: list[ast.stmt] = field(default_factory=list)
    label: str = "task"
    wrap: Callable[[], bool] | None = None  # builds the awaitable form of an opaque node


class _Function:
    """Schedules the blocks of ``solve``; shared facts about the whole function."""

    def __init__(
        self,
        names: _Names,
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
            for child in _child_blocks(stmt):
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

    def block(self, stmts: Sequence[ast.stmt], defined: frozenset[str]) -> _Schedule:
        nodes: list[_Node] = []
        current = defined
        for stmt in stmts:
            nodes.extend(self.nodes_for(stmt, current))
            after = definitely_assigned([stmt], current)
            if after is not ALL:  # after a return the rest is unreachable; keep what we know
                current = after
        return _Scheduler(self, nodes, self.read_outside(stmts)).run()

    def nodes_for(self, stmt: ast.stmt, defined: frozenset[str]) -> list[_Node]:
        awaits = count_awaits(stmt)
        if exits(stmt) or isinstance(stmt, ast.Raise) or _raises(stmt):
            inline, weight, cp = self.inline(stmt, defined)
            return [_Node([inline], self.effects([stmt]), "barrier", weight, cp)]
        if not awaits:
            return [_Node([stmt], self.effects([stmt]), "pure")]
        if _is_unit(stmt):
            target, awaitable = _unit_parts(stmt)
            label = target_names(target)[0] if target is not None and target_names(target) else ""
            return [
                _Node(
                    [stmt],
                    self.effects([stmt]),
                    "call",
                    1,
                    1,
                    target=target,
                    awaitable=awaitable,
                    label=label or _call_base(awaitable),
                )
            ]
        if isinstance(stmt, ast.For):
            staged = _LoopSplitter(self, stmt, defined).split()
            if staged is not None:
                return staged
        inline, weight, cp = self.inline(stmt, defined)
        node = _Node([inline], self.effects([stmt], exposed=True), "opaque", weight, cp)
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
            trips = _trip_count(stmt)
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
        if any(isinstance(n, _COMPREHENSIONS) and count_awaits(n) for n in iter_scope(stmt)):
            return stmt, INF, INF
        return stmt, awaits, awaits

    def _wrap(
        self, node: _Node, original: ast.stmt, inline: ast.stmt, defined: frozenset[str]
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
            body.append(ast.Return(value=_tuple(outputs, False)))
        definition = ast.AsyncFunctionDef(
            name=helper,
            args=_arguments(params),
            body=body,
            decorator_list=[],
            returns=None,
            type_comment=None,
        )
        node.prelude = [definition]
        node.awaitable = ast.Call(func=_name(helper), args=[_name(p) for p in params], keywords=[])
        node.target = _tuple(outputs, True) if outputs else None
        return True


def _all_statements(stmts: Sequence[ast.stmt]) -> list[ast.stmt]:
    """Statements at every depth (nested function bodies excluded)."""
    out: list[ast.stmt] = []
    for stmt in stmts:
        out.append(stmt)
        for block in _child_blocks(stmt):
            out.extend(_all_statements(block))
    return out


def _raises(stmt: ast.stmt) -> bool:
    return any(isinstance(n, ast.Raise) for n in iter_scope(stmt))


def _arguments(params: Sequence[str]) -> ast.arguments:
    return ast.arguments(
        posonlyargs=[],
        args=[ast.arg(arg=p) for p in params],
        vararg=None,
        kwonlyargs=[],
        kw_defaults=[],
        kwarg=None,
        defaults=[],
    )


def _trip_count(stmt: ast.stmt) -> int | None:
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


class _LoopSplitter:
    """Loop distribution of one ``for`` loop into stages over all iterations."""

    def __init__(self, function: _Function, loop: ast.For, defined: frozenset[str]) -> None:
        self.f = function
        self.loop = loop
        self.defined = defined
        self.filtered: ast.expr | None = None

    def split(self) -> list[_Node] | None:
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
        if any(exits(s) for s in body) or any(_raises(s) for s in body):
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
        nodes: list[_Node] = []
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

    def _items(
        self, condition: ast.expr | None, tnames: list[str]
    ) -> tuple[ast.expr, _Node | None]:
        loop = self.loop
        it = loop.iter
        if condition is None and isinstance(it, ast.Name) and it.id in self.f.list_names:
            return it, None
        base = it.id if isinstance(it, ast.Name) else "_".join(tnames) or "item"
        name = self.f.names.fresh(f"{base}_items" if condition is None else f"selected_{base}")
        if condition is None:
            value: ast.expr = ast.Call(func=_name("list"), args=[it], keywords=[])
        else:
            value = ast.ListComp(
                elt=_load(loop.target),
                generators=[
                    ast.comprehension(
                        target=_store(loop.target), iter=it, ifs=[condition], is_async=0
                    )
                ],
            )
        stmt = ast.Assign(targets=[_name(name, True)], value=value)
        self.f.list_names.add(name)
        return _name(name), _Node([stmt], self.f.effects([stmt]), "pure")

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
                parts.append((producer.pattern, _name(producer.list_name)))
        if not parts:
            parts.append((self.loop.target, items))
        if len(parts) == 1:
            return _store(parts[0][0]), parts[0][1]
        target = ast.Tuple(elts=[_store(p[0]) for p in parts], ctx=ast.Store())
        iterable = ast.Call(func=_name("zip"), args=[p[1] for p in parts], keywords=[])
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
        if _is_unit(stmt) and (simple_target or isinstance(stmt, ast.Expr)):
            unit_target, awaitable = _unit_parts(stmt)
            if side_effect_free(_strip_calls(awaitable), f.pure_helpers):
                outputs = target_names(unit_target) if unit_target is not None else []
                base = outputs[0] if outputs else _call_base(awaitable)
                list_name = f.names.fresh(f"{base}_list") if outputs else None
                gathered = _gather_over(awaitable, target, iterable)
                written = frozenset({list_name}) if list_name else frozenset()
                effects = Effects(frozenset(outer_reads | list_reads), written)
                node = _Node(
                    [_assign_or_expr(list_name, ast.Await(gathered))],
                    effects,
                    "call",
                    1,
                    1,
                    target=_name(list_name, True) if list_name else None,
                    awaitable=gathered,
                    label=base,
                )
                pattern = _store(unit_target) if unit_target is not None else None
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
            new = ast.Assign(targets=[_name(list_name, True)], value=comp)
            effects = Effects(frozenset(outer_reads | list_reads), frozenset({list_name}))
            return _Stage(
                _Node([new], effects, "pure"), outputs, list_name, _store(stmt.targets[0])
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
            body.append(ast.Return(value=_tuple(outputs, False)))
        is_async = count_awaits(stmt) > 0
        definition: ast.stmt
        if is_async:
            definition = ast.AsyncFunctionDef(
                name=label, args=_arguments(params), body=body, decorator_list=[], returns=None,
                type_comment=None,
            )  # fmt: skip
        else:
            definition = ast.FunctionDef(
                name=label, args=_arguments(params), body=body, decorator_list=[], returns=None,
                type_comment=None,
            )  # fmt: skip
        call = ast.Call(func=_name(label), args=[_name(p) for p in params], keywords=[])
        list_name = f.names.fresh(f"{outputs[0]}_list" if outputs else f"{label}_results")
        pattern = _tuple(outputs, True) if outputs else None
        effects = Effects(
            frozenset(self.f.effects([stmt], exposed=True).reads - private | list_reads),
            frozenset({list_name}),
        )
        if is_async:
            gathered = _gather_over(call, target, iterable)
            node = _Node(
                [definition, _assign_or_expr(list_name if outputs else None, ast.Await(gathered))],
                effects,
                "call" if inner.rounds == 1 else "opaque",
                inner.rounds,
                inner.critical_path,
                target=_name(list_name, True) if outputs else None,
                awaitable=gathered,
                prelude=[definition],
                label=label,
            )
            if node.kind == "opaque":
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
            node = _Node(
                [definition, _assign_or_expr(list_name if outputs else None, comp)], effects, "pure"
            )
        return _Stage(node, outputs, list_name if outputs else None, pattern)

    def _residual(
        self,
        seq_stmts: list[ast.stmt],
        tnames: list[str],
        producers: Sequence[_Stage],
        items: ast.expr,
        exports: set[str],
    ) -> _Node:
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
            return _Node([loop], effects, "pure")
        body = self.f.block(loop.body, frozenset(inner_defined))
        loop.body = body.stmts or [ast.Pass()]
        eff = self.f.effects(seq_stmts, exposed=True)
        effects = Effects(
            frozenset((eff.reads - private - set(tnames)) | list_reads),
            frozenset(eff.writes | set(target_names(target)) | exports),
        )
        trips = _trip_count(self.loop) if self.filtered is None else None
        weight = INF if trips is None else trips * body.rounds
        cp = INF if trips is None else trips * body.critical_path
        return _Node([loop], effects, "opaque", weight, cp, label="loop")


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
    node: _Node
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
    return ast.Assign(targets=[_name(name, True)], value=value)


# -- the scheduler ---------------------------------------------------------------------


class _Scheduler:
    """ASAP list scheduling of one block's nodes into rounds, tasks and inline statements."""

    def __init__(self, function: _Function, nodes: list[_Node], outside: set[str]) -> None:
        self.f = function
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
                if "barrier" in (a.kind, b.kind) or a.effects.conflicts(b.effects):
                    self.preds[j].append(i)

    def critical_path(self) -> float:
        finish: list[float] = []
        for j, node in enumerate(self.nodes):
            start = max((finish[i] for i in self.preds[j]), default=0.0)
            finish.append(start + node.cp)
        return max(finish, default=0.0)

    def run(self) -> _Schedule:
        nodes = self.nodes
        done: dict[int, float] = {}  # node -> when its results are available
        tasks: dict[int, str] = {}  # forked, not yet joined
        items: list[tuple[str, list[int]]] = []
        remaining = list(range(len(nodes)))
        t = 0.0

        def ready(j: int) -> bool:
            return all(i in done and done[i] <= t for i in self.preds[j])

        def join_for(js: Iterable[int]) -> None:
            for j in js:
                for i in self.preds[j]:
                    if i in tasks:
                        items.append(("join", [i]))
                        del tasks[i]

        while remaining:
            progressed = True
            while progressed:
                progressed = False
                for j in remaining:
                    node = nodes[j]
                    if node.kind in ("pure", "barrier") and ready(j):
                        if node.kind == "barrier":
                            for i in sorted(tasks, key=lambda k: done[k]):
                                items.append(("join", [i]))
                            tasks.clear()
                        join_for([j])
                        items.append(("inline", [j]))
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
                if node.kind == "call":
                    group.append(j)
                elif node.kind == "opaque":
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
                    done[j] = t + nodes[j].weight
                    items.append(("fork", [j]))
                    remaining.remove(j)
                if group:
                    items.append(("gather", group))
                    t += 1
                    for j in group:
                        done[j] = t
                        remaining.remove(j)
                continue
            if exclusive:
                j = exclusive[0]
                join_for([j])
                items.append(("inline", [j]))
                t += nodes[j].weight
                done[j] = t
                remaining.remove(j)
                continue
            pending = [done[i] for i in tasks if done[i] > t]
            if not pending:  # pragma: no cover - every node has its predecessors scheduled
                raise AssertionError("scheduler stalled")
            t = min(pending)
        for i in sorted(tasks, key=lambda k: done[k]):
            items.append(("join", [i]))
            t = max(t, done[i])
        tasks.clear()
        return _Schedule(self._emit(items), t, self.critical_path())

    def _emit(self, items: list[tuple[str, list[int]]]) -> list[ast.stmt]:
        nodes = self.nodes
        # a task that overlaps nothing runs in place
        inline_forks: set[int] = set()
        for index, (kind, members) in enumerate(items):
            if kind != "fork":
                continue
            j = members[0]
            for later_kind, later in items[index + 1 :]:
                if later_kind == "join" and later == [j]:
                    inline_forks.add(j)
                    break
                if later_kind in ("gather", "fork") or (
                    later_kind == "inline" and nodes[later[0]].weight
                ):
                    break
        out: list[ast.stmt] = []
        task_names: dict[int, str] = {}
        for kind, members in items:
            if kind == "inline" or (kind == "fork" and members[0] in inline_forks):
                out.extend(nodes[members[0]].stmts)
            elif kind == "join":
                j = members[0]
                if j in inline_forks:
                    continue
                node = nodes[j]
                joined = ast.Await(_name(task_names[j]))
                out.append(
                    ast.Assign(targets=[node.target], value=joined)
                    if node.target is not None
                    else ast.Expr(value=joined)
                )
            elif kind == "fork":
                j = members[0]
                node = nodes[j]
                assert node.awaitable is not None
                task = self.f.names.fresh(f"{node.label}_task")
                task_names[j] = task
                out.extend(node.prelude)
                out.append(
                    ast.Assign(
                        targets=[_name(task, True)],
                        value=_asyncio("ensure_future", node.awaitable),
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
        gathered = ast.Await(_asyncio("gather", *awaitables))
        if all(t is None for t in targets):
            out.append(ast.Expr(value=gathered))
            return out
        placeholder = None
        elts: list[ast.expr] = []
        for target in targets:
            if target is None:
                placeholder = placeholder or self.f.names.placeholder()
                elts.append(_name(placeholder, True))
            else:
                elts.append(_store(target))
        out.append(ast.Assign(targets=[ast.Tuple(elts=elts, ctx=ast.Store())], value=gathered))
        return out
