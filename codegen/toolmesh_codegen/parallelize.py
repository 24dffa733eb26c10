"""The parallelizer: a serial ``async def solve(...)`` becomes an equivalent program whose
independent mesh calls run concurrently. Pure AST → AST, deterministic, no LLM.

How, in four passes over ``solve`` (each a module of ``toolmesh_codegen._plan``):

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
from dataclasses import dataclass, field

from toolmesh_codegen._dataflow import assigned_names
from toolmesh_codegen._errors import ValidationError
from toolmesh_codegen._plan.blocks import Function
from toolmesh_codegen._plan.build import Names
from toolmesh_codegen._plan.facts import impure_helpers, serial_rounds_of
from toolmesh_codegen._plan.layout import wrap_long_gathers
from toolmesh_codegen._plan.nodes import INF
from toolmesh_codegen._plan.normalize import Normalizer
from toolmesh_codegen._plan.rename import Renamer
from toolmesh_codegen.graph import PlanGraph
from toolmesh_codegen.validate import ENTRY, check, is_mesh_call

__all__ = ["Plan", "parallelize", "plan"]


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
    graph: PlanGraph = field(default_factory=PlanGraph)
    """The call graph of ``solve`` with the round each step runs in (see ``graph``)."""


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
    names = Names(tree)
    module_names = {n for s in tree.body for n in assigned_names(s)} | {
        a.asname or a.name for s in tree.body if isinstance(s, ast.Import) for a in s.names
    }
    helpers = {s.name: s for s in tree.body if isinstance(s, ast.FunctionDef)}
    impure = impure_helpers(helpers)
    pure_helpers = frozenset(helpers) - impure

    body = Normalizer(names, pure_helpers).block(solve.body)
    body = Renamer(names, body).block(body)
    solve.body = body or [ast.Pass()]
    function = Function(names, body, impure, pure_helpers)
    params = {a.arg for a in [*solve.args.posonlyargs, *solve.args.args, *solve.args.kwonlyargs]}
    schedule = function.block(body, frozenset(params | module_names))
    solve.body = schedule.stmts or [ast.Pass()]
    serial_rounds = serial_rounds_of(program.tree)
    uses_asyncio = any(isinstance(n, ast.Name) and n.id == "asyncio" for n in ast.walk(solve))
    if uses_asyncio and not any(
        isinstance(s, ast.Import) and any(a.name == "asyncio" for a in s.names) for s in tree.body
    ):
        first = 1 if has_docstring(tree) else 0
        tree.body.insert(first, ast.Import(names=[ast.alias(name="asyncio")]))
    ast.fix_missing_locations(tree)
    output = wrap_long_gathers(ast.unparse(tree) + "\n")
    try:
        check(output, None, serial=False)
    except ValidationError as exc:  # pragma: no cover - a bug in the rewrite
        raise AssertionError(f"the parallelizer produced an invalid program: {exc}") from exc
    calls = sum(is_mesh_call(n) for n in ast.walk(program.tree))
    return Plan(
        source=output,
        rounds=finite(schedule.rounds),
        critical_path=finite(schedule.critical_path),
        serial_rounds=serial_rounds,
        calls=calls,
        graph=schedule.graph,
    )


def finite(value: float) -> int | None:
    return None if value == INF else int(value)


def has_docstring(tree: ast.Module) -> bool:
    return bool(
        tree.body
        and isinstance(tree.body[0], ast.Expr)
        and isinstance(tree.body[0].value, ast.Constant)
        and isinstance(tree.body[0].value.value, str)
    )
