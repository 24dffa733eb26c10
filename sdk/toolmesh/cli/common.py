"""What every command module of the CLI shares: the typer app, consoles, options, errors.

This is the CLI's public seam. The client's own command modules and the plugins
of the other parts (``toolmesh-local``, ``toolmesh-codegen``, found through the
``toolmesh.cli`` entry points) import it; it imports none of them, so the command
modules never import each other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

import toolmesh
from toolmesh.cli._args import image_file
from toolmesh.cli._errors import DEBUG_FLAG, DEBUG_VARIABLE, ToolmeshGroup, err, err_line

__all__ = [
    "AddressOpt",
    "app",
    "console",
    "err",
    "err_line",
    "fail",
    "image_file",
    "program_source",
    "run_async",
]

T = TypeVar("T")

app = typer.Typer(
    name="toolmesh",
    cls=ToolmeshGroup,
    help="Vision models served by Triton as typed, documented functions over gRPC.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()


@app.callback()
def _options(
    debug: Annotated[
        bool,
        typer.Option(
            DEBUG_FLAG,
            help=f"Show the traceback of an unexpected error (or {DEBUG_VARIABLE}=1), for bug reports.",
        ),
    ] = False,
) -> None:
    """Vision models served by Triton as typed, documented functions over gRPC."""
    # ToolmeshGroup.main reads --debug before parsing; declared here for --help.


AddressOpt = Annotated[
    str | None,
    typer.Option(
        "--address", "-a", help="Gateway host:port (default TOOLMESH_ADDRESS or localhost:50051)."
    ),
]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` on stderr; raise the returned exit (1 failed, 2 usage)."""
    err_line(message)
    return typer.Exit(code)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; a remote refusal becomes one ``error:`` line."""
    try:
        return asyncio.run(coro)
    except toolmesh.RemoteError as exc:
        raise fail(f"{exc.code.name}: {exc.details}") from exc


def program_source(program: Path) -> str:
    """The program's text, or a one-line usage error saying what is wrong with the file."""
    if not program.exists():
        raise fail(f"{program}: no such file", 2)
    if not program.is_file():
        raise fail(f"{program}: not a file", 2)
    try:
        source = program.read_text(encoding="utf-8")
        compile(source, str(program), "exec", dont_inherit=True)
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"{program}: cannot be read as text: {exc}", 2) from exc
    except (SyntaxError, ValueError) as exc:
        where = f" (line {exc.lineno}: {exc.msg})" if isinstance(exc, SyntaxError) else ""
        raise fail(f"{program}: not a Python program{where}", 2) from exc
    return source
