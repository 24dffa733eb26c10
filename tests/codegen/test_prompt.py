"""The prompt comes from the registry: documentation, schemas, and only the worked
examples that validate against it; nothing about functions is written in the code."""

from __future__ import annotations

import json

import pytest

import toolmesh
from toolmesh_codegen import LLMError
from toolmesh_codegen.prompt import build_messages, extract_program, load_examples, system_prompt

BLUR = toolmesh.FunctionInfo(
    name="blur",
    documentation="Blurs `image` with a box filter of `radius` pixels and returns it.",
    parameters_schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["image", "radius"],
        "properties": {
            "image": {"type": "string", "format": "image"},
            "radius": {"type": "integer", "minimum": 1, "maximum": 10},
        },
    },
    result_schema={"type": "string", "format": "image"},
)


async def test_prompt_lists_every_live_function(functions: list[toolmesh.FunctionInfo]) -> None:
    prompt = system_prompt(functions)
    for info in functions:
        if not info.available:  # listed by name only, as not to be called
            assert f"### {info.signature()}" not in prompt and info.name in prompt
            continue
        assert f"### {info.signature()}" in prompt
        assert info.documentation.strip() in prompt
        assert json.dumps(info.parameters_schema, sort_keys=True) in prompt
        assert json.dumps(info.result_schema, sort_keys=True) in prompt
    assert prompt.count("Question: ") == len(load_examples())  # every example fits


def test_prompt_follows_the_registry_not_the_code() -> None:
    prompt = system_prompt([BLUR])
    assert "### blur(image, radius)" in prompt
    assert 'await toolmesh.call("blur", image=image, radius=1)' in prompt
    # the shipped examples call other functions, so none fits this registry
    assert "Question:" not in prompt
    for name in ("find", "greyscale", "resize", "rotate", "convert_format"):
        assert f'"{name}"' not in prompt and f"{name}(" not in prompt


def test_messages_hold_the_question() -> None:
    messages = build_messages("How blurry is it?", [BLUR])
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "How blurry is it?" in messages[1]["content"]


def test_extract_program() -> None:
    fenced = "Sure:\n```python\nasync def solve(image):\n    return 1\n```\nDone."
    assert extract_program(fenced) == "async def solve(image):\n    return 1\n"
    two = "```\nprint(1)\n```\n```py\nasync def solve(image):\n    return 2\n```"
    assert "return 2" in extract_program(two)
    assert extract_program("async def solve(image):\n    return 3").startswith("async def")
    with pytest.raises(LLMError, match="no program"):
        extract_program("I cannot help with that.")
