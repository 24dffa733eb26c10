"""The plan as a graph: the steps, edges and rounds the parallelizer found, written as
Mermaid and DOT. The outputs are parsed back (not compared with stored text) and
checked against dependencies worked out by hand for each program, and against the
plan's own rounds for every golden and corpus program."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.test_errors import toolmesh_cli
from tests.codegen.conftest import CORPUS
from toolmesh_codegen import plan
from toolmesh_codegen.graph import GraphFormat, PlanGraph, StepKind, render, to_dot, to_mermaid

GOLDEN = sorted((Path(__file__).parent / "golden").glob("*.py"))


@dataclass
class Parsed:
    """A drawing read back: node id → (label, round title), and its edges."""

    nodes: dict[str, tuple[str, str]]
    edges: set[tuple[str, str]]


def parse_mermaid(text: str) -> Parsed:
    lines = [line.strip() for line in text.strip().splitlines()]
    assert lines[0] == "flowchart TD"
    nodes: dict[str, tuple[str, str]] = {}
    edges: set[tuple[str, str]] = set()
    current: str | None = None
    for line in lines[1:]:
        if m := re.fullmatch(r'subgraph (\w+) \["(.*)"\]', line):
            assert current is None, "subgraphs do not nest"
            current = m.group(2)
        elif line == "end":
            assert current is not None
            current = None
        elif m := re.fullmatch(r'(\w+)\["(.*)"\]', line):
            assert current is not None, f"node outside a round: {line}"
            label = m.group(2).replace("#quot;", '"').replace("#lt;", "<").replace("#gt;", ">")
            nodes[m.group(1)] = (label.replace("#amp;", "&"), current)
        elif m := re.fullmatch(r"(\w+) --> (\w+)", line):
            edges.add((m.group(1), m.group(2)))
        else:
            raise AssertionError(f"unexpected Mermaid line: {line!r}")
    assert current is None
    return Parsed(nodes, edges)


def parse_dot(text: str) -> Parsed:
    lines = [line.strip() for line in text.strip().splitlines()]
    assert lines[0] == "digraph plan {" and lines[-1] == "}"
    nodes: dict[str, tuple[str, str]] = {}
    edges: set[tuple[str, str]] = set()
    cluster: str | None = None
    title: str | None = None
    quoted = r'"((?:[^"\\]|\\.)*)"'
    for line in lines[1:-1]:
        if line in ("rankdir=TB;", "node [shape=box];"):
            continue
        if m := re.fullmatch(r"subgraph (cluster_\w+) \{", line):
            cluster, title = m.group(1), None
        elif m := re.fullmatch(rf"label={quoted};", line):
            assert cluster is not None
            title = m.group(1)
        elif line == "}":
            cluster = None
        elif m := re.fullmatch(rf"(\w+) \[label={quoted}\];", line):
            assert cluster is not None and title is not None
            nodes[m.group(1)] = (re.sub(r"\\(.)", r"\1", m.group(2)), title)
        elif m := re.fullmatch(r"(\w+) -> (\w+);", line):
            edges.add((m.group(1), m.group(2)))
        else:
            raise AssertionError(f"unexpected DOT line: {line!r}")
    return Parsed(nodes, edges)


def by_label(parsed: Parsed) -> tuple[dict[str, str], set[tuple[str, str]]]:
    """Round title per label, and edges as label pairs (ids are the renderer's choice)."""
    label = {node: text for node, (text, _) in parsed.nodes.items()}
    rounds = {text: title for text, title in parsed.nodes.values()}
    return rounds, {(label[a], label[b]) for a, b in parsed.edges}


PEOPLE_CARS_COLOUR = """
async def solve(image):
    people = await toolmesh.call("find", image=image, object_name="person")
    cars = await toolmesh.call("find", image=image, object_name="car")
    nearest = max(people, key=lambda p: p["box"][3])
    colour = await toolmesh.call("dominant_color", image=image, box=nearest["box"])
    return len(people), len(cars), colour["name"]
"""


def test_independent_calls_share_a_round_and_a_dependent_one_follows() -> None:
    graph = plan(PEOPLE_CARS_COLOUR).graph
    for parsed in (parse_mermaid(to_mermaid(graph)), parse_dot(to_dot(graph))):
        rounds, edges = by_label(parsed)
        assert rounds == {
            "people = find(object_name='person')": "round 1",
            "cars = find(object_name='car')": "round 1",
            "colour = dominant_color()": "round 2",
        }
        # through the plain statement `nearest = ...`, and nothing links the cars
        assert edges == {("people = find(object_name='person')", "colour = dominant_color()")}


def test_a_per_detection_chain_fans_out_round_after_round() -> None:
    source = """
async def solve(image):
    people = await toolmesh.call("find", image=image, object_name="person")
    levels = []
    for person in people:
        grey = await toolmesh.call("greyscale", image=image.crop(person["box"]))
        pixel = await toolmesh.call("resize", image=grey, width=1, height=1)
        levels.append(pixel.getpixel((0, 0)))
    return levels
"""
    graph = plan(source).graph
    assert [s.functions for s in graph.steps] == [("find",), ("greyscale",), ("resize",)]
    assert [s.first_round for s in graph.steps] == [1, 2, 3]
    assert [s.fan_out for s in graph.steps] == [False, True, True]
    ids = [s.id for s in graph.steps]
    assert set(graph.edges) == {(ids[0], ids[1]), (ids[1], ids[2])}
    rounds, _ = by_label(parse_mermaid(to_mermaid(graph)))
    assert sorted(rounds.values()) == ["round 1", "round 2", "round 3"]
    assert all(label.endswith("per person") for label in rounds if "find" not in label)


def test_a_branch_with_rounds_of_its_own_is_one_step_spanning_them() -> None:
    source = (GOLDEN[0].parent / "branch_as_task.py").read_text()
    result = plan(source)
    graph = result.graph
    branch = next(s for s in graph.steps if s.kind is StepKind.BLOCK)
    assert set(branch.functions) == {"greyscale", "rotate"}
    # it needs both finds (its test compares their counts) and nothing else
    finds = {s.id for s in graph.steps if s.functions == ("find",)}
    assert {a for a, b in graph.edges if b == branch.id} == finds
    assert branch.first_round == 2 and branch.rounds == 2 and branch.last_round == 3
    assert max(s.last_round or 0 for s in graph.steps) == result.rounds == 3
    text = dict(parse_mermaid(to_mermaid(graph)).nodes)[branch.id][0]
    assert "rounds 2–3" in text


def test_steps_after_a_data_dependent_loop_have_no_round_number() -> None:
    source = """
async def solve(image):
    level = 0
    while level < 3:
        grey = await toolmesh.call("greyscale", image=image)
        level = level + 1
    turned = await toolmesh.call("rotate", image=grey, angle=90)
    return turned.size
"""
    result = plan(source)
    assert result.rounds is None
    loop, turned = result.graph.steps
    assert loop.rounds is None and loop.first_round == 1
    assert turned.first_round is None
    assert result.graph.edges == ((loop.id, turned.id),)
    parsed = parse_dot(to_dot(result.graph))
    assert parsed.nodes[turned.id][1] == "after a data-dependent step"
    assert "rounds known at run time" in parsed.nodes[loop.id][0]


def test_labels_with_quotes_survive_both_formats() -> None:
    source = """
async def solve(image):
    found = await toolmesh.call("find", image=image, object_name='the "red" <car> & co')
    return len(found)
"""
    graph = plan(source).graph
    (label,) = [s.label for s in graph.steps]
    assert '"red"' in label
    assert [t for t, _ in parse_mermaid(to_mermaid(graph)).nodes.values()] == [label]
    assert [t for t, _ in parse_dot(to_dot(graph)).nodes.values()] == [label]


@pytest.mark.parametrize("path", [*GOLDEN, *CORPUS], ids=lambda p: p.stem)
def test_every_edge_runs_forward_and_the_rounds_match_the_plan(path: Path) -> None:
    result = plan(path.read_text())
    graph: PlanGraph = result.graph
    steps = {s.id: s for s in graph.steps}
    assert steps, "every program calls the mesh"
    for a, b in graph.edges:
        before, after = steps[a], steps[b]
        if before.last_round is not None and after.first_round is not None:
            assert before.last_round < after.first_round, (before, after)
    if result.rounds is not None:
        assert all(s.first_round is not None for s in graph.steps)
        assert max(s.last_round or 0 for s in graph.steps) == result.rounds
    # the two formats draw the same graph
    mermaid, dot = parse_mermaid(to_mermaid(graph)), parse_dot(to_dot(graph))
    assert mermaid.nodes == dot.nodes and mermaid.edges == dot.edges == set(graph.edges)
    assert set(mermaid.nodes) == set(steps)


def test_the_format_follows_the_extension_or_the_option() -> None:
    assert GraphFormat.for_path(Path("a.mmd")) is GraphFormat.MERMAID
    assert GraphFormat.for_path(Path("a.MD")) is GraphFormat.MARKDOWN
    assert GraphFormat.for_path(Path("a.gv")) is GraphFormat.DOT
    assert GraphFormat.for_path(Path("a.txt"), "dot") is GraphFormat.DOT
    with pytest.raises(ValueError, match="cannot tell the graph format"):
        GraphFormat.for_path(Path("a.txt"))
    with pytest.raises(ValueError, match="unknown graph format 'svg'"):
        GraphFormat.for_path(Path("a.dot"), "svg")
    markdown = render(plan(PEOPLE_CARS_COLOUR).graph, GraphFormat.MARKDOWN)
    assert markdown.startswith("```mermaid\nflowchart TD\n") and markdown.endswith("```\n")


def test_parallelize_writes_the_graph_in_each_format(tmp_path: Path) -> None:
    program = tmp_path / "serial.py"
    program.write_text(PEOPLE_CARS_COLOUR)
    done = toolmesh_cli(
        "parallelize", str(program), "--graph", "plan.mmd", "-o", "parallel.py", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "asyncio.gather" in (tmp_path / "parallel.py").read_text()
    rounds, _ = by_label(parse_mermaid((tmp_path / "plan.mmd").read_text()))
    assert sorted(rounds.values()) == ["round 1", "round 1", "round 2"]
    done = toolmesh_cli(
        "parallelize", str(program), "--graph", "plan.txt", "--graph-format", "dot", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert len(parse_dot((tmp_path / "plan.txt").read_text()).nodes) == 3
    assert "asyncio.gather" in done.stdout  # the program still goes to stdout


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--graph", "plan.txt"], "cannot tell the graph format from 'plan.txt'"),
        (["--graph", "plan.dot", "--graph-format", "svg"], "unknown graph format 'svg'"),
        (["--graph-format", "dot"], "--graph-format needs --graph FILE"),
        (["--graph", "missing/plan.dot"], "missing: no such directory (for --graph)"),
    ],
)
@pytest.mark.parametrize("command", ["parallelize", "ask"])
def test_graph_option_mistakes_are_usage_errors_before_any_work(
    tmp_path: Path, command: str, options: list[str], message: str
) -> None:
    program = tmp_path / "serial.py"
    program.write_text(PEOPLE_CARS_COLOUR)
    # ask would fail on the unreachable gateway (exit 1) if it got that far
    first = [str(program)] if command == "parallelize" else ["How?", "--address", "127.0.0.1:9"]
    done = toolmesh_cli(command, *first, *options, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert done.stdout == "" and sorted(p.name for p in tmp_path.iterdir()) == ["serial.py"]
