"""What every command module of the CLI shares: the typer app, consoles, options, errors.

This is the CLI's public seam. The client's own command modules and the plugins
of the other parts (``toolmesh-local``, ``toolmesh-codegen``, found through the
``toolmesh.cli`` entry points) import it; it imports none of them, so the command
modules never import each other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

import toolmesh

__all__ = ["AddressOpt", "app", "console", "err", "fail", "run_async"]

T = TypeVar("T")

app = typer.Typer(
    name="toolmesh",
    help="Vision models served by Triton as typed, documented functions over gRPC.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
# errors are one line however narrow the terminal: never wrapped
err = Console(stderr=True, soft_wrap=True)

AddressOpt = Annotated[
    str | None,
    typer.Option(
        "--address", "-a", help="Gateway host:port (default TOOLMESH_ADDRESS or localhost:50051)."
    ),
]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` on stderr; raise the returned exit (1 failed, 2 usage)."""
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(code)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; a remote refusal becomes one ``error:`` line."""
    try:
        return asyncio.run(coro)
    except toolmesh.RemoteError as exc:
        raise fail(f"{exc.code.name}: {exc.details}") from exc
