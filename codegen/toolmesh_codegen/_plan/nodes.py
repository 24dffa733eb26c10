"""The scheduler's vocabulary: a block's statements as :class:`Node` s of a kind, and
the :class:`Schedule` a block becomes.

The kinds are an enum so a new kind is a compile-time question for every pass that
switches on them, not a string that silently matches nothing.
"""

from __future__ import annotations

import ast
import enum
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from toolmesh_codegen._dataflow import Effects
from toolmesh_codegen.graph import PlanGraph


class NodeKind(enum.Enum):
    """How the scheduler may place a node."""

    PURE = "pure"
    """No mesh call: runs inline as soon as its inputs are ready, costs no round."""
    CALL = "call"
    """One round, awaitable: joins the other calls ready at the same time in a gather."""
    OPAQUE = "opaque"
    """An ``if``/loop/helper of its own rounds: a task, or inline when it cannot be one."""
    BARRIER = "barrier"
    """``return``/``raise``/``break``/``continue``: everything before finishes first."""


INF = math.inf
"""The rounds of a loop whose trip count is known only at run time."""


@dataclass
class Schedule:
    """A block rewritten: its statements, rounds along its longest path, critical path,
    and the dependency graph of its steps with the round each starts in."""

    stmts: list[ast.stmt]
    rounds: float
    critical_path: float
    graph: PlanGraph


@dataclass
class Node:
    """One statement (or loop stage) of a block, as the scheduler sees it."""

    stmts: list[ast.stmt]
    effects: Effects
    kind: NodeKind
    weight: float = 0.0  # rounds when it runs
    cp: float = 0.0  # its own critical path
    target: ast.expr | None = None
    awaitable: ast.expr | None = None
    prelude: list[ast.stmt] = field(default_factory=list)
    label: str = "task"
    wrap: Callable[[], bool] | None = None  # builds the awaitable form of an opaque node
    over: str = ""  # a loop stage: the loop variable(s) it runs once per value of
