"""What the serial program says about itself before any rewrite: which helpers are
pure, and how many awaits its longest path makes (the baseline the rounds compare to).
"""

from __future__ import annotations

import ast
from collections.abc import Sequence

from toolmesh_codegen._dataflow import (
    AliasClasses,
    assigned_names,
    count_awaits,
    iter_scope,
    mutated_roots,
)
from toolmesh_codegen._plan.build import COMPREHENSIONS
from toolmesh_codegen._policy import STDOUT
from toolmesh_codegen.validate import ENTRY


def serial_rounds_of(tree: ast.Module) -> int | None:
    """Awaits along the serial program when it has no loops over calls (else ``None``)."""
    solve = next(s for s in tree.body if isinstance(s, ast.AsyncFunctionDef) and s.name == ENTRY)
    for node in iter_scope(solve):
        if isinstance(node, (ast.For, ast.While, *COMPREHENSIONS)) and count_awaits(node):
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


def impure_helpers(helpers: dict[str, ast.FunctionDef]) -> frozenset[str]:
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
