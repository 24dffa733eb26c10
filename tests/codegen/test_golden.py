"""The parallelizer's output, golden-tested: each ``golden/*.py`` serial program must
rewrite to exactly ``golden/*.expected``, and the rewrite's facts must hold."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from tests.codegen.critical_path import critical_path
from toolmesh_codegen import ValidationError, check, parallelize, plan

GOLDEN = sorted((Path(__file__).parent / "golden").glob("*.py"))


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.stem)
def test_golden(path: Path) -> None:
    expected = path.with_suffix(".expected").read_text()
    actual = parallelize(path.read_text())
    diff = "".join(
        difflib.unified_diff(
            expected.splitlines(True), actual.splitlines(True), "expected", "actual"
        )
    )
    assert actual == expected, diff
    check(actual, None, serial=False)
    rewrite = plan(path.read_text())
    assert rewrite.rounds == rewrite.critical_path == critical_path(path.read_text())


def test_independent_calls_share_a_round() -> None:
    rewrite = plan((Path(__file__).parent / "golden" / "two_finds.py").read_text())
    assert (rewrite.rounds, rewrite.serial_rounds, rewrite.calls) == (1, 2, 2)


def test_dependent_calls_stay_in_order() -> None:
    source = (
        "async def solve(image):\n"
        '    grey = await toolmesh.call("greyscale", image=image)\n'
        '    turned = await toolmesh.call("rotate", image=grey, angle=90)\n'
        "    return turned.size\n"
    )
    rewrite = plan(source)
    assert "gather" not in rewrite.source
    assert rewrite.rounds == 2


def test_mutation_orders_statements() -> None:
    source = (
        "async def solve(image):\n"
        "    boxes = []\n"
        '    people = await toolmesh.call("find", image=image, object_name="person")\n'
        "    boxes.append(len(people))\n"
        '    cars = await toolmesh.call("find", image=image, object_name="car")\n'
        "    boxes.append(len(cars))\n"
        "    return boxes\n"
    )
    out = parallelize(source)
    assert out.index("boxes.append(len(people))") < out.index("boxes.append(len(cars))")
    assert "people, cars = await asyncio.gather(" in out


def test_serial_contract_is_checked() -> None:
    with pytest.raises(ValidationError, match="asyncio is not needed"):
        parallelize(
            "import asyncio\n\nasync def solve(image):\n"
            '    a, b = await asyncio.gather(toolmesh.call("find", image=image, object_name="x"),'
            ' toolmesh.call("find", image=image, object_name="y"))\n    return a\n'
        )
