"""The output's line shape: ``ast.unparse`` writes every statement on one line, and a
round of several calls reads better as a column.
"""

from __future__ import annotations

import ast

from toolmesh_codegen._dataflow import is_gather_call


def wrap_long_gathers(source: str, width: int = 99) -> str:
    """Put the awaitables of a long ``asyncio.gather(...)`` line one per line.

    ``ast.unparse`` writes every statement on one line; a round of several calls reads
    better as a column.
    """
    lines = source.splitlines()
    replacements: dict[int, list[str]] = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.Assign, ast.Expr)) or node.lineno != node.end_lineno:
            continue
        line = lines[node.lineno - 1]
        value = node.value
        if len(line) <= width or not (isinstance(value, ast.Await) and is_gather_call(value.value)):
            continue
        assert isinstance(value.value, ast.Call)
        indent = line[: len(line) - len(line.lstrip())]
        head = ""
        if isinstance(node, ast.Assign):
            head = (
                " = ".join(
                    ", ".join(ast.unparse(e) for e in t.elts)
                    if isinstance(t, ast.Tuple)
                    else ast.unparse(t)
                    for t in node.targets
                )
                + " = "
            )
        args = [f"{indent}    {ast.unparse(arg)}," for arg in value.value.args]
        replacements[node.lineno] = [f"{indent}{head}await asyncio.gather(", *args, f"{indent})"]
    out: list[str] = []
    for number, line in enumerate(lines, start=1):
        out.extend(replacements.get(number, [line]))
    return "\n".join(out) + "\n"
