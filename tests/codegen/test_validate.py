"""The validator: allow-listed structure, calls checked against the live registry's
schemas, every problem with its line."""

from __future__ import annotations

import pytest

import toolmesh
from tests.codegen.conftest import CORPUS
from tests.codegen.test_prompt import BLUR
from toolmesh_codegen import ValidationError, check, find_problems
from toolmesh_codegen.prompt import load_examples

BAD = """\
import os

async def solve(image):
    people = await toolmesh.call("find", image, object_name="person")
    cars = await toolmesh.call("find", image=image, object_name="car", threshold=2)
    turned = await toolmesh.call("rotate", image=image, angle=45)
    same = await toolmesh.call("rotate", image=image, angle="90")
    grey = await toolmesh.call("grayscale", image=image)
    small = await toolmesh.call("resize", image="photo.jpg", width=10)
    extra = await toolmesh.call("greyscale", image=image, strength=3)
    pending = toolmesh.call("greyscale", image=image)
    secret = open("/etc/passwd").read()
    classes = ().__class__.__bases__[0].__subclasses__()
    trick = getattr(image, "save")
    leak = "{0.__class__}".format(image)
    image.save("/tmp/out.png")
    try:
        x = 1
    except Exception:
        x = 2
    return len(people), undefined_name
"""


async def test_every_problem_is_reported_with_its_line(functions: list) -> None:
    problems = {(p.line, p.message) for p in find_problems(BAD, functions)}
    lines = {line for line, _ in problems}
    assert lines >= {1, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 21}
    text = "\n".join(f"{line}: {m}" for line, m in sorted(problems))
    for expected in [
        "1: import of 'os' is not allowed",
        "4: pass the arguments of 'find' by keyword",
        "5: find(): argument 'threshold'=2 is invalid: 2 is greater than the maximum of 1",
        "6: rotate(): argument 'angle'=45 is invalid: 45 is not a multiple of 90",
        "7: rotate(): argument 'angle'='90' is invalid: '90' is not of type 'integer'",
        "8: unknown function 'grayscale'; registered functions: ",
        "9: resize(): argument 'image' expects an image",
        "9: resize() is missing required argument height",
        "10: greyscale() has no argument 'strength'",
        "11: toolmesh.call(...) must be awaited where it is made",
        "12: open is not available: generated programs cannot touch files",
        "13: attribute '__subclasses__' is not allowed",
        "14: getattr is not available",
        "15: attribute 'format' is not allowed",
        "16: attribute 'save' is not allowed",
        "17: try/except is not allowed",
        "21: name 'undefined_name' is not defined",
    ]:
        assert expected in text, expected
    with pytest.raises(ValidationError) as caught:
        check(BAD, functions)
    assert str(caught.value).startswith(f"{len(caught.value.problems)} problems in the program")


async def test_corpus_and_examples_are_valid(functions: list) -> None:
    for path in CORPUS:
        assert find_problems(path.read_text(), functions) == [], path.name
    for example in load_examples():
        assert example.fits(functions), example.name


def test_schemas_come_from_the_registry() -> None:
    ok = 'async def solve(image):\n    return await toolmesh.call("blur", image=image, radius=3)\n'
    assert find_problems(ok, [BLUR]) == []
    bad = ok.replace("radius=3", "radius=0")
    assert "less than the minimum of 1" in str(find_problems(bad, [BLUR])[0])
    assert "unknown function 'blur'" in str(find_problems(ok, []))


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("x = 1\n", "must define `async def solve(image)`"),
        ("async def solve(image)\n    return 1\n", "line 1: syntax error"),
        (
            "async def helper():\n    pass\nasync def solve(image):\n    pass\n",
            "only solve() may be async",
        ),
        ("async def solve(image):\n    class A:\n        pass\n", "classes are not allowed"),
        ("async def solve(image):\n    image.size = 3\n", "assigning to attributes is not allowed"),
        ("async def solve(image):\n    __import__('os')\n", "names starting with an underscore"),
        ("async def solve(image):\n    return [y := 1]\n", "assignment expressions"),
        (
            "async def solve(image):\n    return toolmesh.Client()\n",
            "toolmesh.Client is not available",
        ),
        ("async def solve(image):\n    return eval('1')\n", "eval is not available"),
        (
            "async def solve(image):\n    f = toolmesh.call\n",
            'call toolmesh.call("name", ...) directly',
        ),
        (
            "async def solve(image):\n    return await toolmesh.call(name, image=image)\n",
            "string literal",
        ),
    ],
)
def test_structure(source: str, message: str) -> None:
    problems = [str(p) for p in find_problems(source, [])]
    assert any(message in p for p in problems), problems


def test_parallel_form_is_accepted_only_outside_serial_mode() -> None:
    source = (
        "import asyncio\n\nasync def solve(image):\n"
        '    a, b = await asyncio.gather(toolmesh.call("blur", image=image, radius=1),'
        ' toolmesh.call("blur", image=image, radius=2))\n'
        '    task = asyncio.ensure_future(toolmesh.call("blur", image=image, radius=3))\n'
        "    return a, b, await task\n"
    )
    assert find_problems(source, [BLUR], serial=False) == []
    assert any("asyncio is not needed" in str(p) for p in find_problems(source, [BLUR]))
    bad = source.replace("ensure_future", "get_event_loop")
    assert any(
        "asyncio.get_event_loop is not available" in str(p)
        for p in find_problems(bad, [BLUR], serial=False)
    )
    loop = source.replace("await task", "task.get_loop()")
    assert any(
        "'get_loop' is not allowed" in str(p) for p in find_problems(loop, [BLUR], serial=False)
    )


def test_functions_may_be_given_as_a_mapping() -> None:
    ok = 'async def solve(image):\n    return await toolmesh.call("blur", image=image, radius=3)\n'
    program = check(ok, {"blur": BLUR})
    assert program.parameters == ("image",)
    assert [c.function for c in program.calls] == ["blur"]
    assert isinstance(program.calls[0].line, int)
    assert toolmesh.FunctionInfo is type(BLUR)
