"""Command-line options the codegen commands share, declared once so ``ask`` and
``eval`` (and ``ask`` and ``parallelize``) cannot drift apart in name, bounds or help."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["GraphFormatOpt", "GraphOpt", "RepairsOpt", "ReplanOpt"]

RepairsOpt = Annotated[
    int, typer.Option(min=0, help="Times an invalid program is sent back to the LLM.")
]
ReplanOpt = Annotated[
    int,
    typer.Option(
        "--replan",
        min=0,
        help="Times a program that fails when it runs (exception, refused call, wrong "
        "answer type) goes back to the LLM with the error and its line.",
    ),
]
GraphOpt = Annotated[
    Path | None,
    typer.Option(
        "--graph",
        help="Write the plan's call graph with its rounds here: .mmd (Mermaid), "
        ".md (Mermaid in Markdown) or .dot (Graphviz).",
    ),
]
GraphFormatOpt = Annotated[
    str | None,
    typer.Option(
        "--graph-format",
        help="mermaid, markdown or dot, whatever --graph's extension says.",
    ),
]
