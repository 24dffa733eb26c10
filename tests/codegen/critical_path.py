"""An independent model of the critical path of a serial program, for the tests.

It does not share code with the parallelizer. It walks the serial program once (loops
until their variables stop changing, or as many times as a literal ``range`` says) and
gives every variable the round in which its value is ready:

* a mesh call's round is one more than the latest round among what it reads;
* other values are ready as soon as what they read is ready;
* mutating ``xs.append(v)`` / ``d[k] = v`` makes ``xs`` / ``d`` ready no earlier than ``v``;
* an ``if`` (the unit the rewrite keeps whole) starts when everything it reads from
  outside is ready, and so do all calls inside it;
* ``return``, ``raise``, ``break``, ``continue`` (and an ``if`` holding one) wait for
  everything before them in their block, and everything after them waits for them.

The critical path is the latest round of any call. The model covers the programs the
tests generate and the corpus; it raises ``Unsupported`` for anything else.
"""

from __future__ import annotations

import ast

STDOUT = "<stdout>"
PURE = {
    "get", "keys", "values", "items", "copy", "crop", "getpixel", "resize", "rotate",
    "convert", "index", "count", "lower", "upper", "split", "join", "strip",
}  # fmt: skip


class Unsupported(Exception):
    pass


def critical_path(source: str) -> int:
    tree = ast.parse(source)
    solve = next(s for s in tree.body if isinstance(s, ast.AsyncFunctionDef))
    model = _Model()
    env = {a.arg: 0 for a in solve.args.args}
    model.block(solve.body, env, 0)
    return model.deepest


def _is_call(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Await)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Attribute)
        and isinstance(node.value.func.value, ast.Name)
        and node.value.func.value.id == "toolmesh"
    )


def _control_exit(node: ast.AST, in_loop: bool = False) -> bool:
    """Whether control can leave ``node`` other than by falling through."""
    if isinstance(node, (ast.Return, ast.Raise)):
        return True
    if isinstance(node, (ast.Break, ast.Continue)):
        return not in_loop
    if isinstance(node, (ast.For, ast.While)):
        return any(_control_exit(s, True) for s in node.body)
    return any(_control_exit(c, in_loop) for c in ast.iter_child_nodes(node))


def _root(node: ast.expr) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


class _Model:
    def __init__(self) -> None:
        self.deepest = 0

    # expressions ------------------------------------------------------------------

    def expr(self, node: ast.AST, env: dict[str, int], floor: int) -> int:
        if _is_call(node):
            assert isinstance(node, ast.Await) and isinstance(node.value, ast.Call)
            inputs = [self.expr(a, env, floor) for a in node.value.args]
            inputs += [self.expr(k.value, env, floor) for k in node.value.keywords]
            depth = 1 + max([floor, *inputs])
            self.deepest = max(self.deepest, depth)
            return depth
        if isinstance(node, ast.Name):
            return max(floor, env.get(node.id, 0))
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            inner = dict(env)
            depth = floor
            for gen in node.generators:
                d = self.expr(gen.iter, inner, floor)
                for name in ast.walk(gen.target):
                    if isinstance(name, ast.Name):
                        inner[name.id] = d
                depth = max(depth, d, *(self.expr(c, inner, floor) for c in gen.ifs))
            parts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
            return max([depth, *(self.expr(p, inner, floor) for p in parts)])
        if isinstance(node, ast.Lambda):
            inner = dict(env)
            for arg in node.args.args:
                inner[arg.arg] = 0
            return self.expr(node.body, inner, floor)
        if isinstance(node, ast.Call):
            depth = max([floor, *(self.expr(c, env, floor) for c in ast.iter_child_nodes(node))])
            if isinstance(node.func, ast.Name) and node.func.id == "print":
                env[STDOUT] = max(env.get(STDOUT, 0), depth)
            elif isinstance(node.func, ast.Attribute) and node.func.attr not in PURE:
                root = _root(node.func.value)
                if root is not None:
                    env[root] = max(env.get(root, 0), depth)
            return depth
        children = [self.expr(c, env, floor) for c in ast.iter_child_nodes(node)]
        return max([floor, *children])

    # statements -------------------------------------------------------------------

    def block(self, stmts: list[ast.stmt], env: dict[str, int], floor: int) -> int:
        """Run a block; returns the latest round reached in it."""
        reached = floor
        for stmt in stmts:
            if _control_exit(stmt):
                # hoistable parts first, then the barrier waits for all before it
                if isinstance(stmt, ast.If):
                    reached = max(reached, self.expr(stmt.test, env, floor))
                    start = reached
                    a, b = dict(env), dict(env)
                    end = max(self.block(stmt.body, a, start), self.block(stmt.orelse, b, start))
                    _merge(env, a, b)
                elif isinstance(stmt, ast.Return | ast.Raise):
                    value = stmt.value if isinstance(stmt, ast.Return) else stmt.exc
                    end = self.expr(value, env, floor) if value is not None else floor
                    end = max(end, reached)
                else:
                    raise Unsupported(ast.dump(stmt)[:80])
                floor = reached = max(reached, end)
                continue
            reached = max(reached, self.stmt(stmt, env, floor))
        return reached

    def stmt(self, stmt: ast.stmt, env: dict[str, int], floor: int) -> int:
        if isinstance(stmt, ast.Assign):
            depth = self.expr(stmt.value, env, floor)
            for target in stmt.targets:
                self.bind(target, depth, env, floor)
            return depth
        if isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            depth = self.expr(stmt.value, env, floor)
            self.bind(stmt.target, depth, env, floor)
            return depth
        if isinstance(stmt, ast.AugAssign):
            depth = max(self.expr(stmt.value, env, floor), self.expr(stmt.target, env, floor))
            root = _root(stmt.target)
            if root is not None:
                env[root] = max(env.get(root, 0), depth)
            return depth
        if isinstance(stmt, ast.Expr):
            return self.expr(stmt.value, env, floor)
        if isinstance(stmt, ast.If):
            start = max(floor, self._outside_reads(stmt, env))
            a, b = dict(env), dict(env)
            end = max(self.block(stmt.body, a, start), self.block(stmt.orelse, b, start))
            _merge(env, a, b)
            return end
        if isinstance(stmt, ast.For):
            return self.loop(stmt, env, floor)
        if isinstance(stmt, ast.Pass):
            return floor
        raise Unsupported(type(stmt).__name__)

    def _outside_reads(self, stmt: ast.stmt, env: dict[str, int]) -> int:
        bound: set[str] = set()
        depth = 0
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                bound.add(node.id)
        for node in ast.walk(stmt):
            if (
                isinstance(node, ast.Name)
                and isinstance(node.ctx, ast.Load)
                and node.id not in bound
            ):
                depth = max(depth, env.get(node.id, 0))
        return depth

    def bind(self, target: ast.expr, depth: int, env: dict[str, int], floor: int) -> None:
        if isinstance(target, ast.Name):
            env[target.id] = depth
        elif isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                self.bind(elt, depth, env, floor)
        else:
            root = _root(target)
            if root is not None:
                env[root] = max(env.get(root, 0), depth, self.expr(target, env, floor))

    def loop(self, stmt: ast.For, env: dict[str, int], floor: int) -> int:
        if stmt.orelse:
            raise Unsupported("for-else")
        trips = None
        it = stmt.iter
        if isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "range":
            trips = len(range(*(ast.literal_eval(a) for a in it.args)))
        start = self.expr(it, env, floor)
        body = list(stmt.body)
        guard = None
        first = body[0] if body else None
        if (
            isinstance(first, ast.If)
            and not first.orelse
            and len(first.body) == 1
            and isinstance(first.body[0], ast.Continue)
        ):
            guard, body = first.test, body[1:]  # a filter on the items
        elif isinstance(first, ast.If) and not first.orelse and len(body) == 1:
            guard, body = first.test, list(first.body)  # the same filter, written as an if
        reached = start
        previous: dict[str, int] | None = None
        for _ in range(trips if trips is not None else 4):
            for name in ast.walk(stmt.target):
                if isinstance(name, ast.Name):
                    env[name.id] = start
            body_floor = floor if guard is None else self.expr(guard, env, floor)
            reached = max(reached, self.block(body, env, body_floor))
            if trips is None:
                if previous == env:
                    break
                previous = dict(env)
        else:
            if trips is None:
                raise Unsupported("a loop whose calls depend on earlier iterations")
        return reached


def _merge(env: dict[str, int], a: dict[str, int], b: dict[str, int]) -> None:
    for name in set(a) | set(b):
        env[name] = max(a.get(name, 0), b.get(name, 0))
