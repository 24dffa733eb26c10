"""The validator: a program is parsed with ``ast`` and checked against an allow-list and
the live registry's schemas before anything runs it.

Two modes. ``serial=True`` checks what an LLM (or a person) writes: plain serial code in
which every mesh call is awaited where it is made. ``serial=False`` also admits what the
parallelizer emits (``asyncio.gather``, tasks, local ``async def`` helpers), so the
sandbox can check every program it runs. Every finding is a :class:`Problem` with a line
number and a message written for the LLM that has to fix it.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema

from toolmesh import FunctionInfo
from toolmesh_codegen._errors import Problem, ValidationError
from toolmesh_codegen._policy import (
    MODULE_ATTRIBUTES,
    REFUSED_BUILTINS,
    SAFE_BUILTINS,
    refused_attribute,
)

__all__ = [
    "MAX_SOURCE_CHARS",
    "MeshCall",
    "Program",
    "check",
    "find_problems",
    "is_available",
    "is_mesh_call",
]

MAX_SOURCE_CHARS = 50_000
ENTRY = "solve"

_REFUSED_STATEMENTS: dict[type[ast.AST], str] = {
    ast.ClassDef: "classes are not allowed; use dicts and lists",
    ast.Delete: "del is not allowed; assign a new value instead",
    ast.Try: "try/except is not allowed: let errors propagate (a failed call fails the program)",
    ast.With: "with-statements are not allowed",
    ast.AsyncWith: "async with is not allowed",
    ast.AsyncFor: "async for is not allowed; use a plain for loop",
    ast.Global: "global is not allowed",
    ast.Nonlocal: "nonlocal is not allowed",
    ast.ImportFrom: "from-imports are not allowed; toolmesh, asyncio and math are already available",
    ast.Match: "match statements are not allowed; use if/elif",
    ast.NamedExpr: "assignment expressions (:=) are not allowed; assign on a line of its own",
    ast.Yield: "generators are not allowed",
    ast.YieldFrom: "generators are not allowed",
}
if hasattr(ast, "TryStar"):
    _REFUSED_STATEMENTS[ast.TryStar] = _REFUSED_STATEMENTS[ast.Try]

_SERIAL_HINT = (
    "write serial code: `x = await toolmesh.call(...)` where you need the result; "
    "independent calls are run concurrently for you"
)


@dataclass(frozen=True, slots=True)
class MeshCall:
    """One ``toolmesh.call("name", ...)`` site of a program."""

    function: str
    line: int


@dataclass(frozen=True, slots=True)
class Program:
    """A program that passed validation, parsed once."""

    source: str
    tree: ast.Module
    parameters: tuple[str, ...]
    calls: tuple[MeshCall, ...]
    required: tuple[str, ...] = ()

    def check_inputs(self, names: Iterable[str]) -> None:
        """Raise ``TypeError`` naming what ``solve`` lacks or does not take."""
        given = set(names)
        missing = [p for p in self.required if p not in given]
        unknown = sorted(given - set(self.parameters))
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"needs {', '.join(missing)}")
            if unknown:
                parts.append(f"takes no {', '.join(unknown)}")
            raise TypeError(f"solve({', '.join(self.parameters)}) {' and '.join(parts)}")


def is_available(info: FunctionInfo) -> bool:
    """Whether a registered function can run now (registries may list ones that cannot)."""
    return bool(getattr(info, "available", True))


def is_mesh_call(node: ast.AST) -> bool:
    """``toolmesh.call(...)``: the only way a program reaches the mesh."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "call"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "toolmesh"
    )


def _is_asyncio_call(node: ast.AST, names: Iterable[str] = ("gather",)) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in names
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "asyncio"
    )


def check(
    source: str,
    functions: Mapping[str, FunctionInfo] | Iterable[FunctionInfo] | None = None,
    *,
    serial: bool = True,
) -> Program:
    """Validate ``source``; return the parsed program or raise :class:`ValidationError`.

    Args:
        source: The program text.
        functions: The registry (``await client.functions()``); ``None`` skips the
            checks of mesh calls against schemas (structure only).
        serial: Check the serial contract (what an LLM writes) rather than also
            admitting the parallelizer's output.

    Raises:
        ValidationError: with every problem found, each with its line.
    """
    problems, program = _analyse(source, functions, serial=serial)
    if problems or program is None:
        raise ValidationError(problems)
    return program


def find_problems(
    source: str,
    functions: Mapping[str, FunctionInfo] | Iterable[FunctionInfo] | None = None,
    *,
    serial: bool = True,
) -> list[Problem]:
    """Every problem of ``source`` (empty when it is valid); see :func:`check`."""
    return _analyse(source, functions, serial=serial)[0]


def _analyse(
    source: str,
    functions: Mapping[str, FunctionInfo] | Iterable[FunctionInfo] | None,
    *,
    serial: bool,
) -> tuple[list[Problem], Program | None]:
    if len(source) > MAX_SOURCE_CHARS:
        return [Problem(1, 0, f"the program is longer than {MAX_SOURCE_CHARS} characters")], None
    try:
        tree = ast.parse(source, filename="<program>")
    except SyntaxError as exc:
        return [Problem(exc.lineno or 1, exc.offset or 0, f"syntax error: {exc.msg}")], None
    except (RecursionError, MemoryError, ValueError) as exc:
        return [Problem(1, 0, f"the program cannot be parsed: {type(exc).__name__}")], None
    registry: dict[str, FunctionInfo] | None
    if functions is None:
        registry = None
    elif isinstance(functions, Mapping):
        registry = {str(name): info for name, info in functions.items()}
    else:
        registry = {info.name: info for info in functions}
    checker = _Checker(registry, serial=serial)
    try:
        checker.check_module(tree)
    except RecursionError:
        return [Problem(1, 0, "the program is nested too deeply")], None
    if checker.problems:
        return checker.problems, None
    assert checker.solve is not None
    args = checker.solve.args
    positional = [*args.posonlyargs, *args.args]
    defaulted = {a.arg for a in positional[len(positional) - len(args.defaults) :]}
    defaulted |= {a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d}
    parameters = tuple(a.arg for a in [*positional, *args.kwonlyargs])
    required = tuple(p for p in parameters if p not in defaulted)
    return [], Program(source, tree, parameters, tuple(checker.calls), required)


class _Checker(ast.NodeVisitor):
    """Walks the whole tree once, collecting problems rather than stopping at the first."""

    def __init__(self, registry: dict[str, FunctionInfo] | None, *, serial: bool) -> None:
        self.registry = registry
        self.serial = serial
        self.problems: list[Problem] = []
        self.calls: list[MeshCall] = []
        self.solve: ast.AsyncFunctionDef | None = None
        self.bound: set[str] = set()
        self.function_depth = 0
        self.async_depth = 0
        self.awaited: set[int] = set()  # id() of mesh calls that are awaited or gathered
        self.mesh_nodes: dict[int, ast.Call] = {}
        self.module_uses: set[int] = set()  # id() of `toolmesh`/`asyncio`/`math` in `m.attr`

    def problem(self, node: ast.AST, message: str) -> None:
        line = getattr(node, "lineno", 1)
        col = getattr(node, "col_offset", 0)
        self.problems.append(Problem(line, col, message))

    # -- module ---------------------------------------------------------------------

    def check_module(self, tree: ast.Module) -> None:
        self.bound = _bound_names(tree)
        self.module_uses = {
            id(node.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in MODULE_ATTRIBUTES
        }
        for index, stmt in enumerate(tree.body):
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                if index == 0 and isinstance(stmt.value.value, str):
                    continue
                self.problem(stmt, "only a docstring may stand alone at the top level")
            elif isinstance(stmt, ast.Import):
                self.visit(stmt)
            elif isinstance(stmt, ast.Assign):
                if not all(isinstance(t, ast.Name) for t in stmt.targets) or not _is_literal(
                    stmt.value
                ):
                    self.problem(stmt, "top-level assignments must give a name a literal value")
                self.visit(stmt)
            elif isinstance(stmt, ast.AsyncFunctionDef):
                if stmt.name != ENTRY:
                    self.problem(
                        stmt,
                        f"only {ENTRY}() may be async; helpers must be plain `def` functions "
                        "without mesh calls",
                    )
                elif self.solve is not None:
                    self.problem(stmt, f"{ENTRY}() is defined twice")
                else:
                    self.solve = stmt
                self.visit(stmt)
            elif isinstance(stmt, ast.FunctionDef):
                self.visit(stmt)
            else:
                self.visit(stmt)  # report what is inside too
                if type(stmt) not in _REFUSED_STATEMENTS:
                    self.problem(
                        stmt,
                        "only imports, constants and function definitions may appear at the "
                        f"top level; put the work inside `async def {ENTRY}(...)`",
                    )
        if self.solve is None:
            self.problems.append(
                Problem(1, 0, f"the program must define `async def {ENTRY}(image)`")
            )
        self._check_unawaited()

    def _check_unawaited(self) -> None:
        if not self.serial:
            return  # the parallel form hands calls to asyncio.gather / tasks
        for call_id, node in self.mesh_nodes.items():
            if call_id not in self.awaited:
                self.problem(
                    node, f"toolmesh.call(...) must be awaited where it is made; {_SERIAL_HINT}"
                )

    # -- statements -----------------------------------------------------------------

    def generic_visit(self, node: ast.AST) -> None:
        reason = _REFUSED_STATEMENTS.get(type(node))
        if reason is not None:
            self.problem(node, reason)
        super().generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        if self.function_depth:
            self.problem(node, "imports belong at the top of the program")
        for alias in node.names:
            if alias.name not in MODULE_ATTRIBUTES:
                allowed = ", ".join(sorted(MODULE_ATTRIBUTES))
                self.problem(node, f"import of {alias.name!r} is not allowed; available: {allowed}")
            elif alias.asname not in (None, alias.name):
                self.problem(node, f"import {alias.name} without renaming it")

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if node.decorator_list:
            self.problem(node, "decorators are not allowed")
        self._check_name(node, node.name)
        if self.function_depth > 0 and self.serial:
            self.problem(node, "define helper functions at the top level, not inside others")
        for arg in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]:
            self._check_name(arg, arg.arg)
        for special in (node.args.vararg, node.args.kwarg):
            if special is not None:
                self._check_name(special, special.arg)
        self.function_depth += 1
        is_async = isinstance(node, ast.AsyncFunctionDef)
        self.async_depth += is_async
        saved_async = self.async_depth
        if not is_async:
            self.async_depth = 0
        super().generic_visit(node)
        self.async_depth = saved_async - is_async
        self.function_depth -= 1

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._visit_function(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._visit_function(node)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        for arg in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]:
            self._check_name(arg, arg.arg)
        saved = self.async_depth
        self.async_depth = 0
        super().generic_visit(node)
        self.async_depth = saved

    def visit_comprehension(self, node: ast.comprehension) -> None:
        if node.is_async:
            self.problem(node.target, "async comprehensions are not allowed")
        super().generic_visit(node)

    # -- expressions ----------------------------------------------------------------

    def visit_Name(self, node: ast.Name) -> None:
        self._check_name(node, node.id)
        if (
            node.id in MODULE_ATTRIBUTES
            and isinstance(node.ctx, ast.Load)
            and id(node) not in self.module_uses
        ):
            self.problem(
                node,
                f"use {node.id}.<name> directly; {node.id} cannot be aliased or passed around",
            )
        if isinstance(node.ctx, ast.Load) and node.id not in self.bound:
            reason = REFUSED_BUILTINS.get(node.id)
            if reason is not None:
                self.problem(node, f"{node.id} is not available: {reason}")
            elif node.id not in SAFE_BUILTINS and node.id not in MODULE_ATTRIBUTES:
                if hasattr(builtins, node.id):
                    self.problem(node, f"the builtin {node.id} is not available")
                else:
                    self.problem(node, f"name {node.id!r} is not defined")
        if self.serial and node.id == "asyncio":
            self.problem(node, f"asyncio is not needed: {_SERIAL_HINT}")

    def _check_name(self, node: ast.AST, name: str) -> None:
        if name.startswith("_") and name != "_":
            self.problem(node, f"name {name!r}: names starting with an underscore are reserved")
        elif name in MODULE_ATTRIBUTES and not (
            isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
        ):
            self.problem(node, f"{name} is predefined and cannot be rebound; choose another name")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        reason = refused_attribute(node.attr)
        if reason is not None:
            self.problem(node, reason)
        if not isinstance(node.ctx, ast.Load):
            self.problem(node, "assigning to attributes is not allowed; use dicts")
        base = node.value
        if isinstance(base, ast.Name) and base.id == "toolmesh" and node.attr == "call":
            # calls are handled in visit_Call, so this is toolmesh.call used as a value
            self.problem(node, 'call toolmesh.call("name", ...) directly; do not pass it around')
        if isinstance(base, ast.Name) and base.id in MODULE_ATTRIBUTES:
            allowed = MODULE_ATTRIBUTES[base.id]
            if allowed is not None and node.attr not in allowed:
                names = ", ".join(f"{base.id}.{a}" for a in sorted(allowed))
                self.problem(node, f"{base.id}.{node.attr} is not available; use {names}")
        self.generic_visit(node)

    def visit_Await(self, node: ast.Await) -> None:
        value = node.value
        if is_mesh_call(value):
            self.awaited.add(id(value))
        elif self.serial:
            self.problem(node, f"only toolmesh.call(...) can be awaited; {_SERIAL_HINT}")
        elif isinstance(value, ast.Call) and _is_asyncio_call(value, ("gather",)):
            self._mark_gathered(value)
        self.generic_visit(node)

    def _mark_gathered(self, call: ast.Call) -> None:
        for arg in call.args:
            inner = arg.value if isinstance(arg, ast.Starred) else arg
            for sub in ast.walk(inner):
                if is_mesh_call(sub):
                    self.awaited.add(id(sub))

    def visit_Call(self, node: ast.Call) -> None:
        if is_mesh_call(node):
            self.mesh_nodes[id(node)] = node
            self._check_mesh_call(node)
            for arg in node.args[1:]:
                self.visit(arg)
            for kw in node.keywords:
                self.visit(kw.value)
            return
        if _is_asyncio_call(node, ("gather", "ensure_future", "create_task")):
            self._mark_gathered(node)
        self.generic_visit(node)

    def _check_mesh_call(self, node: ast.Call) -> None:
        if not self.async_depth:
            self.problem(node, f"toolmesh.call(...) may only be used inside async def {ENTRY}()")
        if not node.args or not isinstance(node.args[0], ast.Constant):
            self.problem(
                node, 'name the function with a string literal: toolmesh.call("name", ...)'
            )
            return
        name = node.args[0].value
        if not isinstance(name, str):
            self.problem(node, "the first argument of toolmesh.call must be the function's name")
            return
        self.calls.append(MeshCall(name, node.lineno))
        if len(node.args) > 1:
            self.problem(node.args[1], f"pass the arguments of {name!r} by keyword (name=value)")
        if self.registry is None:
            if any(kw.arg is None for kw in node.keywords):
                self.problem(node, "pass arguments by keyword, not with **")
            return
        info = self.registry.get(name)
        if info is None:
            known = ", ".join(sorted(n for n, f in self.registry.items() if is_available(f)))
            self.problem(
                node, f"unknown function {name!r}; registered functions: {known or 'none'}"
            )
            return
        if not is_available(info):
            reason = getattr(info, "unavailable_reason", "") or "no model server can run it now"
            self.problem(node, f"{name}() is registered but not available: {reason}")
        schema = info.parameters_schema
        properties: dict[str, Any] = schema.get("properties", {})
        required = list(schema.get("required", []))
        given: set[str] = set()
        for kw in node.keywords:
            if kw.arg is None:
                self.problem(kw.value, f"pass the arguments of {name!r} by keyword, not with **")
                continue
            given.add(kw.arg)
            prop = properties.get(kw.arg)
            if prop is None:
                if schema.get("additionalProperties", True) is False or properties:
                    self.problem(
                        kw.value,
                        f"{name}() has no argument {kw.arg!r}; its arguments are "
                        f"{', '.join(properties) or 'none'} (signature {info.signature()})",
                    )
                continue
            self._check_literal(name, kw.arg, prop, kw.value)
        missing = [r for r in required if r not in given]
        if missing:
            self.problem(
                node,
                f"{name}() is missing required argument{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)} (signature {info.signature()})",
            )

    def _check_literal(self, function: str, arg: str, prop: dict[str, Any], node: ast.expr) -> None:
        if not _is_literal(node):
            return
        try:
            value = _to_json(ast.literal_eval(node))
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return
        if prop.get("format") in ("image", "binary") and prop.get("type") == "string":
            if not isinstance(value, bytes):
                self.problem(
                    node,
                    f"{function}(): argument {arg!r} expects an image (the input image, a crop "
                    f"of it, or an image returned by a function), not the literal {value!r}",
                )
            return
        schema = {k: v for k, v in prop.items() if k not in ("format", "description", "default")}
        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(value), key=str)
        if errors:
            self.problem(
                node, f"{function}(): argument {arg!r}={value!r} is invalid: {errors[0].message}"
            )


def _is_literal(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return isinstance(node.operand, ast.Constant)
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return all(_is_literal(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(k is not None and _is_literal(k) for k in node.keys) and all(
            _is_literal(v) for v in node.values
        )
    return False


def _to_json(value: Any) -> Any:
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    return value


def _bound_names(tree: ast.Module) -> set[str]:
    """Every name the program binds anywhere (module-wide, flow-insensitive).

    The predefined modules are never counted as bound: binding them anywhere is a
    problem of its own (``_Checker._check_name``), so no binding in one scope can switch
    off the checks of ``toolmesh.``/``asyncio.`` uses in another.
    """
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.alias):
            bound.add(node.asname or node.name)
    return bound - set(MODULE_ATTRIBUTES)
