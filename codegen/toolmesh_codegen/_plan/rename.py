"""Pass 2, rename: a name assigned several times in a block gets a fresh name per
earlier assignment, so reusing a variable does not order calls that share nothing else.
"""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Sequence

from toolmesh_codegen._dataflow import (
    AliasClasses,
    free_reads,
    iter_scope,
    mutated_roots,
    target_names,
)
from toolmesh_codegen._plan.build import COMPREHENSIONS, Names, child_blocks, is_unit


class Renamer:
    """Gives each earlier assignment of a reused name a name of its own (SSA-like),
    so ``result = await f(); ...; result = await g()`` does not order f before g."""

    def __init__(self, names: Names, body: Sequence[ast.stmt]) -> None:
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
            for child_block in child_blocks(stmt):
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
                or not any(is_unit(stmts[i]) for i in where)
            ):
                continue
            for k, index in enumerate(where[:-1]):
                new = self.names.fresh(f"{name}_{k + 1}")
                _rename_target(stmts[index], name, new)
                for later in stmts[index + 1 : where[k + 1] + 1]:
                    _rename_loads(later, name, new)
        return stmts


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
    if isinstance(node, COMPREHENSIONS):
        bound = {n for g in node.generators for n in target_names(g.target)}
        if old in bound:
            _rename_loads(node.generators[0].iter, old, new)
            return
    if isinstance(node, ast.Name) and node.id == old and isinstance(node.ctx, ast.Load):
        node.id = new
        return
    for child in ast.iter_child_nodes(node):
        _rename_loads(child, old, new)
