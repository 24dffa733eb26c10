"""Name-level dataflow facts about statements of one function, for the parallelizer.

Everything here is deliberately conservative: when a fact cannot be shown (a method
that might mutate its object, a name that might alias another) the answer is the one
that keeps more statements ordered. Objects are tracked by the names that can reach
them: a flow-insensitive union of names that may alias (``a = b``, ``xs.append(x)``),
so a mutation through one name is a write to all of them.
"""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from toolmesh_codegen._policy import FRESH_BUILTINS, PURE_BUILTINS, PURE_METHODS, STDOUT
from toolmesh_codegen.validate import is_mesh_call

__all__ = [
    "ALL",
    "AliasClasses",
    "Effects",
    "assigned_names",
    "count_awaits",
    "definitely_assigned",
    "exits",
    "exposed_reads",
    "free_reads",
    "is_gather_call",
    "iter_scope",
    "mutated_roots",
    "read_counts",
    "root_name",
    "side_effect_free",
    "target_names",
]


class _All(frozenset[str]):
    """Every name: what is definitely assigned after a statement that never falls through."""

    def __contains__(self, item: object) -> bool:
        return True

    def __repr__(self) -> str:
        return "ALL"


ALL: frozenset[str] = _All()

_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def iter_scope(node: ast.AST) -> Iterator[ast.AST]:
    """Every node of ``node`` that runs in the same function scope (nested defs skipped)."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        for child in ast.iter_child_nodes(current):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            stack.append(child)


def is_gather_call(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "gather"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "asyncio"
    )


def count_awaits(node: ast.AST) -> int:
    """How many ``await`` expressions run in this scope (each is at least one round)."""
    return sum(isinstance(n, ast.Await) for n in iter_scope(node) if not isinstance(n, ast.Lambda))


def target_names(target: ast.expr) -> list[str]:
    """Names bound by an assignment target (subscripts bind nothing)."""
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for elt in target.elts for n in target_names(elt)]
    if isinstance(target, ast.Starred):
        return target_names(target.value)
    return []


def root_name(expr: ast.expr) -> str | None:
    """The variable an expression reaches an object through: ``a`` for ``a[0].b.c()``."""
    while True:
        if isinstance(expr, ast.Name):
            return expr.id
        if isinstance(expr, (ast.Attribute, ast.Subscript, ast.Starred)):
            expr = expr.value
        elif isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute):
            expr = expr.func.value
        else:
            return None


def free_reads(node: ast.AST) -> set[str]:
    """Names a statement or expression reads from its function's variables.

    Comprehension and lambda variables are local to them and do not count; ``print``
    reads (and writes) the virtual variable that keeps output in order.
    """
    return set(read_counts(node))


def read_counts(node: ast.AST) -> Counter[str]:
    """How many times each of the function's variables is read in ``node``."""
    counts: Counter[str] = Counter()
    _collect_reads(node, frozenset(), counts)
    return counts


def _collect_reads(node: ast.AST, local: frozenset[str], out: Counter[str]) -> None:
    if isinstance(node, ast.Name):
        if isinstance(node.ctx, ast.Load) and node.id not in local:
            out[node.id] += 1
        return
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        inner = local | _params(node.args)
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None:
                _collect_reads(default, local, out)
        for stmt in node.body:
            _collect_reads(stmt, inner | _locally_bound(node.body), out)
        return
    if isinstance(node, ast.Lambda):
        _collect_reads(node.body, local | _params(node.args), out)
        return
    if isinstance(node, _COMPREHENSIONS):
        bound = set(local)
        for index, gen in enumerate(node.generators):
            _collect_reads(gen.iter, frozenset(bound) if index else local, out)
            bound.update(target_names(gen.target))
            for cond in gen.ifs:
                _collect_reads(cond, frozenset(bound), out)
        inner = frozenset(bound)
        if isinstance(node, ast.DictComp):
            _collect_reads(node.key, inner, out)
            _collect_reads(node.value, inner, out)
        else:
            _collect_reads(node.elt, inner, out)
        return
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
        out[STDOUT] += 1
    if isinstance(node, ast.AugAssign):
        # x += 1 reads x
        _collect_reads(_as_load(node.target), local, out)
    for child in ast.iter_child_nodes(node):
        _collect_reads(child, local, out)


def _as_load(target: ast.expr) -> ast.expr:
    if isinstance(target, ast.Name):
        return ast.Name(id=target.id, ctx=ast.Load())
    return target


def _params(args: ast.arguments) -> frozenset[str]:
    names = [a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]]
    names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    return frozenset(names)


def _locally_bound(body: Sequence[ast.stmt]) -> frozenset[str]:
    names: set[str] = set()
    for stmt in body:
        names |= assigned_names(stmt)
    return frozenset(names)


def assigned_names(node: ast.AST) -> set[str]:
    """Names (re)bound by a statement in its own scope: targets, loop variables, defs.

    Comprehension variables and lambda parameters are local to them and do not count.
    """
    names: set[str] = set()
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        names.add(node.name)
        return names
    stack: list[ast.AST] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, ast.Name) and isinstance(current.ctx, (ast.Store, ast.Del)):
            names.add(current.id)
        for child in ast.iter_child_nodes(current):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names.add(child.name)
            elif not isinstance(child, (ast.Lambda, ast.ClassDef, *_COMPREHENSIONS)):
                stack.append(child)
    return names


def mutated_roots(node: ast.AST, impure_helpers: frozenset[str] = frozenset()) -> set[str]:
    """Variables whose objects a statement may change in place.

    A method call mutates its receiver unless the method is known to be pure; a
    subscript store mutates its container; a call of a helper that is not known to be
    pure may mutate every argument; ``print`` writes the output stream.
    """
    roots: set[str] = set()
    for sub in iter_scope(node):
        if isinstance(sub, ast.Call):
            func = sub.func
            if is_mesh_call(sub) or is_gather_call(sub):
                continue
            if isinstance(func, ast.Attribute):
                if func.attr not in PURE_METHODS:
                    root = root_name(func.value)
                    if root is not None and root not in ("asyncio", "toolmesh", "math"):
                        roots.add(root)
            elif isinstance(func, ast.Name):
                if func.id == "print":
                    roots.add(STDOUT)
                elif func.id in impure_helpers:
                    roots.add(STDOUT)
                    for arg in [*sub.args, *(k.value for k in sub.keywords)]:
                        root = root_name(arg)
                        if root is not None:
                            roots.add(root)
        elif isinstance(sub, (ast.Subscript, ast.Attribute)) and isinstance(
            sub.ctx, (ast.Store, ast.Del)
        ):
            root = root_name(sub.value)
            if root is not None:
                roots.add(root)
    return roots


def side_effect_free(expr: ast.AST, pure_helpers: frozenset[str] = frozenset()) -> bool:
    """True when evaluating ``expr`` changes nothing: only pure builtins, methods, helpers."""
    for sub in iter_scope(expr):
        if isinstance(sub, ast.Await):
            return False
        if is_mesh_call(sub) or is_gather_call(sub):
            continue  # creating the coroutine does nothing until it is awaited
        if isinstance(sub, ast.Call):
            func = sub.func
            if isinstance(func, ast.Name):
                if func.id not in PURE_BUILTINS and func.id not in pure_helpers:
                    return False
            elif isinstance(func, ast.Attribute):
                if func.attr not in PURE_METHODS:
                    base = func.value
                    if not (isinstance(base, ast.Name) and base.id == "math"):
                        return False
            else:
                return False
    return True


def exits(node: ast.AST) -> bool:
    """Whether control can leave ``node`` other than by falling through or raising:
    ``return`` anywhere, or ``break``/``continue`` that is not inside a loop within it."""
    return _exits(node, in_loop=False)


def _exits(node: ast.AST, *, in_loop: bool) -> bool:
    if isinstance(node, ast.Return):
        return True
    if isinstance(node, (ast.Break, ast.Continue)):
        return not in_loop
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        return False
    if isinstance(node, (ast.For, ast.While)):
        return any(_exits(s, in_loop=True) for s in node.body) or any(
            _exits(s, in_loop=in_loop) for s in node.orelse
        )
    return any(_exits(child, in_loop=in_loop) for child in ast.iter_child_nodes(node))


def definitely_assigned(stmts: Sequence[ast.stmt], before: Iterable[str]) -> frozenset[str]:
    """Names certainly bound after ``stmts`` run from a state where ``before`` are bound.

    ``ALL`` when the statements never fall through (they return, raise, break or continue).
    """
    current: frozenset[str] = frozenset(before)
    for stmt in stmts:
        if isinstance(current, _All):
            return current
        current = _after(stmt, current)
    return current


def _after(stmt: ast.stmt, current: frozenset[str]) -> frozenset[str]:
    if isinstance(stmt, (ast.Return, ast.Raise, ast.Break, ast.Continue)):
        return ALL
    if isinstance(stmt, ast.If):
        then = definitely_assigned(stmt.body, current)
        other = definitely_assigned(stmt.orelse, current)
        if isinstance(then, _All):
            return other
        if isinstance(other, _All):
            return then
        return then & other
    if isinstance(stmt, (ast.For, ast.While)):
        if isinstance(stmt, ast.While) and isinstance(stmt.test, ast.Constant) and stmt.test.value:
            return current  # while True: leaves only by break (not tracked further)
        return current  # the body may run zero times
    if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        if isinstance(stmt, ast.AnnAssign) and stmt.value is None:
            return current
        return current | frozenset(assigned_names(stmt))
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return current | {stmt.name}
    return current | frozenset(assigned_names(stmt))


def exposed_reads(stmts: Sequence[ast.stmt], before: Iterable[str] = ()) -> set[str]:
    """Names read before this code has certainly bound them: the values it needs from outside."""
    defined = frozenset(before)
    exposed: set[str] = set()
    for stmt in stmts:
        if isinstance(defined, _All):
            break
        if isinstance(stmt, ast.If):
            exposed |= free_reads(stmt.test) - defined
            exposed |= exposed_reads(stmt.body, defined)
            exposed |= exposed_reads(stmt.orelse, defined)
        elif isinstance(stmt, ast.For):
            exposed |= free_reads(stmt.iter) - defined
            inner = defined | frozenset(target_names(stmt.target))
            # the body can read what a previous iteration bound: only names bound
            # before the loop are certainly bound
            # a read before the body binds the name sees the previous iteration's value
            # (or the one from before the loop): exposed either way
            exposed |= exposed_reads(stmt.body, inner)
            exposed |= exposed_reads(stmt.orelse, defined)
        elif isinstance(stmt, ast.While):
            exposed |= free_reads(stmt.test) - defined
            exposed |= exposed_reads(stmt.body, defined)
            exposed |= exposed_reads(stmt.orelse, defined)
        else:
            exposed |= free_reads(stmt) - defined
        defined = _after(stmt, defined)
    return exposed


@dataclass
class AliasClasses:
    """Which names may reach which objects, merged flow-insensitively over a function.

    An edge ``a → b`` means a's object may be b's object or contain it. Assignments
    link both ways (``y = x`` or ``y = x[0]`` may share x's object); storing into a
    container (``xs.append(x)``, ``d[k] = x``) and iterating (``for x in xs``) link the
    container to its items only: mutating an item changes what its containers hold,
    but appending to a list does not change the items.
    """

    reaches: dict[str, set[str]] = field(default_factory=dict)

    def link(self, source: str, target: str) -> None:
        if source != target:
            self.reaches.setdefault(source, set()).add(target)

    def members(self, name: str) -> set[str]:
        """Every name whose object changes when ``name``'s object is mutated."""
        affected = {name}
        frontier = [name]
        while frontier:
            current = frontier.pop()
            for source, targets in self.reaches.items():
                if current in targets and source not in affected:
                    affected.add(source)
                    frontier.append(source)
        return affected

    @classmethod
    def of(cls, body: Sequence[ast.stmt]) -> AliasClasses:
        classes = cls()
        for stmt in body:
            for sub in iter_scope(stmt):
                if isinstance(sub, (ast.Assign, ast.AnnAssign)) and sub.value is not None:
                    targets = sub.targets if isinstance(sub, ast.Assign) else [sub.target]
                    if _fresh(sub.value):
                        continue
                    sources = free_reads(sub.value)
                    for target in targets:
                        for name in _alias_roots(target):
                            for source in sources:
                                classes.link(name, source)
                                if not isinstance(target, ast.Subscript):
                                    classes.link(source, name)  # d[k] = x: d holds x only
                elif isinstance(sub, ast.AugAssign):
                    if not _fresh(sub.value):
                        for name in _alias_roots(sub.target):
                            for source in free_reads(sub.value):
                                classes.link(name, source)
                elif isinstance(sub, (ast.For, ast.comprehension)):
                    for name in target_names(sub.target):
                        for source in free_reads(sub.iter):
                            classes.link(source, name)
                elif (
                    isinstance(sub, ast.Call)
                    and isinstance(sub.func, ast.Attribute)
                    and sub.func.attr not in PURE_METHODS
                ):
                    root = root_name(sub.func.value)
                    if root is not None:
                        for arg in [*sub.args, *(k.value for k in sub.keywords)]:
                            for source in free_reads(arg):
                                classes.link(root, source)
        return classes


def _alias_roots(target: ast.expr) -> list[str]:
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for elt in target.elts for n in _alias_roots(elt)]
    root = root_name(target)
    return [root] if root else []


def _fresh(value: ast.expr) -> bool:
    """Whether the value can hold no reference to an existing object."""
    if isinstance(value, ast.Await):
        return is_mesh_call(value.value)
    if isinstance(value, (ast.Constant, ast.JoinedStr, ast.Compare)):
        return True
    if isinstance(value, ast.UnaryOp) and isinstance(value.op, (ast.Not, ast.USub, ast.UAdd)):
        return True
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
        return value.func.id in FRESH_BUILTINS
    return False


@dataclass(frozen=True, slots=True)
class Effects:
    """What a statement reads and writes, after alias expansion of its mutations."""

    reads: frozenset[str]
    writes: frozenset[str]
    mutations: frozenset[str] = frozenset()  # the part of ``writes`` that changes objects

    @classmethod
    def of(
        cls,
        stmts: Sequence[ast.stmt],
        aliases: AliasClasses,
        impure_helpers: frozenset[str] = frozenset(),
        *,
        exposed_only: bool = False,
    ) -> Effects:
        reads: set[str] = set()
        writes: set[str] = set()
        mutations: set[str] = set()
        for stmt in stmts:
            reads |= free_reads(stmt)
            writes |= assigned_names(stmt)
            for root in mutated_roots(stmt, impure_helpers):
                mutations |= aliases.members(root)
                reads.add(root)
        writes |= mutations
        if exposed_only:
            reads = exposed_reads(stmts) | (reads & {STDOUT})
            for stmt in stmts:
                for root in mutated_roots(stmt, impure_helpers):
                    reads.add(root)
        return cls(frozenset(reads), frozenset(writes), frozenset(mutations))

    def conflicts(self, later: Effects) -> bool:
        """Whether ``later`` must run after this (read-after-write, write-after-read/write)."""
        return bool(
            self.writes & later.reads or self.reads & later.writes or self.writes & later.writes
        )
