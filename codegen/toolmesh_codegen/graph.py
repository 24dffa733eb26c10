"""The plan as a graph: the steps of ``solve`` that call the mesh, which step waits for
which, and the round each one runs in, as Mermaid or Graphviz DOT.

The parallelizer's output is code; a reader who wants to see the dataflow it found
(two ``find`` calls side by side, a per-detection fan-out after them) should not have
to read ``asyncio.gather`` nesting. A step is one scheduler node of ``solve``'s body:
a call, a gather of calls over items (``fan_out``), or an ``if``/loop/per-item helper
of several rounds of its own (``BLOCK``), which stays one step. Edges are the
dependencies between steps (through any plain statements between them), reduced to
the ones no other path implies.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "GraphFormat",
    "PlanGraph",
    "Step",
    "StepKind",
    "render",
    "to_dot",
    "to_mermaid",
    "write_graph",
]


class StepKind(enum.Enum):
    """What a step is."""

    CALL = "call"
    """Mesh calls that take one round: one call, or one gather of calls over items."""
    BLOCK = "block"
    """An ``if``, loop or per-item helper with rounds of its own."""


@dataclass(frozen=True, slots=True)
class Step:
    """One node of the call graph.

    ``first_round`` is 1-based; ``None`` when it starts after a step whose rounds are
    known only at run time. ``rounds`` is how many rounds it takes (``None``: known only
    at run time).
    """

    id: str
    label: str
    kind: StepKind
    functions: tuple[str, ...]
    first_round: int | None
    rounds: int | None
    fan_out: bool = False

    @property
    def last_round(self) -> int | None:
        if self.first_round is None or self.rounds is None:
            return None
        return self.first_round + max(self.rounds, 1) - 1


@dataclass(frozen=True, slots=True)
class PlanGraph:
    """The steps of ``solve``, in program order, and the edges ``(before, after)``."""

    steps: tuple[Step, ...] = ()
    edges: tuple[tuple[str, str], ...] = ()

    def step(self, step_id: str) -> Step:
        """The step ``step_id``.

        Raises:
            KeyError: no such step.
        """
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def rounds(self) -> dict[int | None, list[Step]]:
        """Steps by the round they start in (``None`` last: after a data-dependent step)."""
        out: dict[int | None, list[Step]] = {}
        for step in sorted(self.steps, key=_round_key):
            out.setdefault(step.first_round, []).append(step)
        return out


class GraphFormat(enum.Enum):
    """How a graph is written: by a file's extension, or named with ``--graph-format``."""

    MERMAID = "mermaid"
    """A Mermaid flowchart (``.mmd``)."""
    MARKDOWN = "markdown"
    """The Mermaid flowchart in a fenced ```` ```mermaid ```` block (``.md``), which
    GitHub renders."""
    DOT = "dot"
    """Graphviz DOT (``.dot``, ``.gv``)."""

    @classmethod
    def for_path(cls, path: Path, named: str | None = None) -> GraphFormat:
        """The format ``named`` (a value), else the one ``path``'s extension implies.

        Raises:
            ValueError: an unknown name, or an extension that implies no format.
        """
        if named is not None:
            try:
                return cls(named.lower())
            except ValueError:
                known = ", ".join(f.value for f in cls)
                raise ValueError(f"unknown graph format {named!r} (known: {known})") from None
        by_suffix = {".mmd": cls.MERMAID, ".md": cls.MARKDOWN, ".dot": cls.DOT, ".gv": cls.DOT}
        found = by_suffix.get(path.suffix.lower())
        if found is None:
            raise ValueError(
                f"cannot tell the graph format from {path.name!r}: name it .mmd, .md or .dot, "
                "or pass --graph-format"
            )
        return found


def _round_key(step: Step) -> tuple[int, int]:
    return (1, 0) if step.first_round is None else (0, step.first_round)


def _span(step: Step) -> str:
    if step.rounds is None:
        return " (rounds known at run time)"
    if step.rounds > 1 and step.first_round is not None:
        return f" (rounds {step.first_round}–{step.last_round})"
    if step.rounds > 1:
        return f" ({step.rounds} rounds)"
    return ""


def _text(step: Step) -> str:
    return step.label + _span(step)


def _round_title(number: int | None) -> str:
    return "after a data-dependent step" if number is None else f"round {number}"


def _round_id(number: int | None) -> str:
    return "round_later" if number is None else f"round_{number}"


def to_mermaid(graph: PlanGraph) -> str:
    """A Mermaid ``flowchart``: one subgraph per round, a node per step."""
    lines = ["flowchart TD"]
    for number, steps in graph.rounds().items():
        lines.append(f'    subgraph {_round_id(number)} ["{_round_title(number)}"]')
        lines.extend(f'        {s.id}["{_mermaid_escape(_text(s))}"]' for s in steps)
        lines.append("    end")
    lines.extend(f"    {a} --> {b}" for a, b in graph.edges)
    return "\n".join(lines) + "\n"


def _mermaid_escape(text: str) -> str:
    return (
        text.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
    )


def to_dot(graph: PlanGraph) -> str:
    """Graphviz DOT: one ``cluster_round_N`` subgraph per round, a box per step."""
    lines = ["digraph plan {", "    rankdir=TB;", "    node [shape=box];"]
    for number, steps in graph.rounds().items():
        lines.append(f"    subgraph cluster_{_round_id(number)} {{")
        lines.append(f"        label={_dot_quote(_round_title(number))};")
        lines.extend(f"        {s.id} [label={_dot_quote(_text(s))}];" for s in steps)
        lines.append("    }")
    lines.extend(f"    {a} -> {b};" for a, b in graph.edges)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(graph: PlanGraph, format: GraphFormat) -> str:
    """``graph`` in ``format``."""
    if format is GraphFormat.DOT:
        return to_dot(graph)
    if format is GraphFormat.MARKDOWN:
        return f"```mermaid\n{to_mermaid(graph)}```\n"
    return to_mermaid(graph)


def write_graph(graph: PlanGraph, path: Path, format: GraphFormat | None = None) -> GraphFormat:
    """Write ``graph`` to ``path`` in ``format`` (default: by extension); the format used.

    Raises:
        ValueError: no format given and the extension implies none.
        OSError: the file cannot be written.
    """
    chosen = format or GraphFormat.for_path(path)
    path.write_text(render(graph, chosen))
    return chosen


def reduce_edges(ids: Iterable[str], up: dict[str, set[str]]) -> tuple[tuple[str, str], ...]:
    """Edges ``(a, b)`` for ``a`` in ``up[b]``, without those another path implies.

    ``ids`` must be in a topological order (program order is one).
    """
    order = {step_id: index for index, step_id in enumerate(ids)}
    ancestors: dict[str, set[str]] = {}
    edges: list[tuple[str, str]] = []
    for b in order:
        direct = up.get(b, set())
        ancestors[b] = set(direct).union(*(ancestors[a] for a in direct))
        for a in sorted(direct, key=order.__getitem__):
            if not any(a in ancestors[c] for c in direct if c != a):
                edges.append((a, b))
    return tuple(edges)
