"""The prompt, built from the live registry: every function's documentation and JSON
Schemas as the registry serves them, plus worked examples that are shown only when
they validate against those schemas. Nothing about any function is written here.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Sequence
from importlib import resources
from typing import Any

from toolmesh import FunctionInfo
from toolmesh_codegen._errors import LLMError, Problem
from toolmesh_codegen._policy import SAFE_BUILTINS
from toolmesh_codegen.validate import find_problems, is_available

__all__ = [
    "Example",
    "Message",
    "build_messages",
    "extract_program",
    "load_examples",
    "repair_message",
    "replan_message",
    "system_prompt",
]

Message = dict[str, str]

_RULES = """\
You write Python programs that answer questions about images by calling the vision
functions of a toolmesh: a registry of documented functions served over gRPC.

Answer with exactly one program in one ```python code block, shaped like this:

    async def solve(image):
        ...
        return answer

Rules:
- `image` is the picture the question is about, as a PIL image (RGB). Its own methods
  are fine: image.size, image.crop((x1, y1, x2, y2)), image.getpixel((x, y)).
- Call a function with `await toolmesh.call("<name>", <argument>=<value>, ...)`: the
  name as a string literal and every argument by keyword, with names and types exactly
  as in the function's parametersSchema. A result is plain Python data shaped like the
  function's resultSchema; image results are PIL images.
- Write plain serial code: await each call where you need its result. Do not use
  asyncio, tasks or threads; independent calls are run concurrently for you.
- Return plain data: numbers, strings, booleans, lists, dicts with string keys, images.
- Allowed: assignments, if/elif/else, for and while loops, comprehensions, lambda,
  f-strings, print(), helper functions defined with `def` at the top level (no calls of
  toolmesh in them), and the builtins {builtins}. `toolmesh` and `math` need no import.
- Not allowed: other imports, try/except, with, classes, global, nonlocal, del, `:=`,
  names or attributes that start with an underscore, getattr, setattr, eval, exec, open,
  str.format (use f-strings), assigning to attributes.
- If the functions cannot answer the question, return a string that says why."""


class Example:
    """A worked example: a question and the serial program that answers it."""

    def __init__(self, name: str, question: str, source: str) -> None:
        self.name = name
        self.question = question
        self.source = source

    def fits(self, functions: Sequence[FunctionInfo]) -> bool:
        """Whether every call in the example is valid against these functions."""
        return not find_problems(self.source, functions, serial=True)


def load_examples() -> list[Example]:
    """The worked examples shipped in ``toolmesh_codegen/examples``."""
    examples = []
    folder = resources.files("toolmesh_codegen") / "examples"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".py"):
            continue
        source = entry.read_text()
        question = ast.get_docstring(ast.parse(source)) or entry.name
        body = _without_docstring(source)
        examples.append(Example(entry.name.removesuffix(".py"), question, body))
    return examples


def _without_docstring(source: str) -> str:
    tree = ast.parse(source)
    if tree.body and isinstance(tree.body[0], ast.Expr):
        first = tree.body[0]
        lines = source.splitlines()
        assert first.end_lineno is not None
        return "\n".join(lines[first.end_lineno :]).strip() + "\n"
    return source


def _call_shape(info: FunctionInfo) -> str:
    """``await toolmesh.call("name", a=..., b=...)`` for the required arguments."""
    props: dict[str, Any] = info.parameters_schema.get("properties", {})
    parts = [json.dumps(info.name)]
    for name in info.parameters_schema.get("required", []):
        prop = props.get(name, {})
        if prop.get("format") in ("image", "binary"):
            value = "image"
        elif "enum" in prop:
            value = json.dumps(prop["enum"][0])
        elif "default" in prop:
            value = json.dumps(prop["default"])
        elif prop.get("type") == "string":
            value = '"..."'
        elif prop.get("type") in ("integer", "number"):
            value = str(prop.get("minimum", 1))
        else:
            value = "..."
        parts.append(f"{name}={value}")
    return f"await toolmesh.call({', '.join(parts)})"


def _describe(info: FunctionInfo) -> str:
    return "\n".join(
        [
            f"### {info.signature()}",
            info.documentation.strip(),
            f"Call: {_call_shape(info)}",
            f"parametersSchema: {json.dumps(info.parameters_schema, sort_keys=True)}",
            f"resultSchema: {json.dumps(info.result_schema, sort_keys=True)}",
        ]
    )


def system_prompt(
    functions: Sequence[FunctionInfo], examples: Sequence[Example] | None = None
) -> str:
    """The system message: rules, every registered function, and the examples that fit."""
    if examples is None:
        examples = load_examples()
    builtins = ", ".join(sorted(b for b in SAFE_BUILTINS if b[0].islower()))
    parts = [_RULES.format(builtins=builtins)]
    ordered = sorted((f for f in functions if is_available(f)), key=lambda f: f.name)
    parts.append(f"\nFunctions in the registry ({len(ordered)}):\n")
    parts.extend(_describe(info) + "\n" for info in ordered)
    missing = sorted(f.name for f in functions if not is_available(f))
    if missing:
        parts.append(f"Registered but not available now, do not call: {', '.join(missing)}.\n")
    fitting = [e for e in examples if e.fits(ordered)]
    if fitting:
        parts.append("Worked examples:\n")
        for example in fitting:
            parts.append(f"Question: {example.question}\n```python\n{example.source}```\n")
    return "\n".join(parts)


def build_messages(
    question: str,
    functions: Sequence[FunctionInfo],
    *,
    inputs: str = "image: the picture (PIL image)",
    examples: Sequence[Example] | None = None,
) -> list[Message]:
    """The chat messages of the first attempt."""
    return [
        {"role": "system", "content": system_prompt(functions, examples)},
        {"role": "user", "content": f"Question: {question}\nInputs of solve(): {inputs}"},
    ]


def repair_message(problems: Sequence[Problem]) -> Message:
    """The follow-up that sends a program's problems back to the LLM."""
    listed = "\n".join(f"- {p}" for p in problems)
    return {
        "role": "user",
        "content": (
            "Your program cannot run as written. The validator found:\n"
            f"{listed}\n"
            "Fix every problem and answer with the whole corrected program in one "
            "```python code block."
        ),
    }


def replan_message(what: str, message: str, line: int | None, source: str) -> Message:
    """The follow-up that sends a run-time failure back to the LLM: what went wrong,
    on which line of its program, with that line quoted."""
    where = ""
    lines = source.splitlines()
    if line is not None and 1 <= line <= len(lines):
        where = f" on line {line}:\n    {lines[line - 1].strip()}\n"
    else:
        where = ":\n"
    return {
        "role": "user",
        "content": (
            f"Your program passed the checks but failed when it ran ({what}){where}"
            f"{message}\n"
            "Fix the program and answer with the whole corrected program in one "
            "```python code block."
        ),
    }


_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)```", re.S | re.I)


def extract_program(text: str) -> str:
    """The program in an LLM answer: the fenced block that defines ``solve`` (or the
    whole answer when it is bare code).

    Raises:
        LLMError: the answer holds no program.
    """
    blocks = _FENCE.findall(text)
    for block in blocks:
        if re.search(r"^\s*async\s+def\s+solve\s*\(", block, re.M):
            return str(block).strip() + "\n"
    if blocks:
        return str(blocks[0]).strip() + "\n"
    if re.search(r"^\s*async\s+def\s+solve\s*\(", text, re.M):
        return text.strip() + "\n"
    raise LLMError("the answer contains no program (expected a ```python block with solve())")
