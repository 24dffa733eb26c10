"""The one place where the CLI turns a failure into an ``error:`` line and an exit status.

Every command of every part runs inside :class:`ToolmeshGroup`, so no command
can leak a traceback for something a user typed: usage mistakes exit 2 (as
click does), failed operations exit 1, and the message is always one line.
``--debug`` or ``TOOLMESH_DEBUG=1`` re-raises instead, for bug reports.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

import toolmesh

__all__ = ["ToolmeshGroup", "err", "err_line", "explain"]

# errors are one line however narrow the terminal: never wrapped
err = Console(stderr=True, soft_wrap=True)

DEBUG_VARIABLE = "TOOLMESH_DEBUG"
DEBUG_FLAG = "--debug"
_FILE_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def err_line(message: str) -> None:
    """``error: message`` on stderr, as one line."""
    err.print(f"[red]error:[/red] {escape(_one_line(message))}", highlight=False)


def explain(exc: BaseException) -> tuple[int, str]:
    """The exit status and the one-line message for an exception a command raised."""
    if isinstance(exc, toolmesh.RemoteError):
        code = 2 if isinstance(exc, toolmesh.InvalidArgument) else 1
        return code, f"{exc.code.name}: {exc.details}"
    if isinstance(exc, toolmesh.WireFormatError):  # ArgumentError: what the user typed
        return 2, str(exc)
    if isinstance(exc, toolmesh.ToolmeshError):
        return 1, str(exc)
    if isinstance(exc, _FILE_ERRORS) and exc.filename is not None:
        return 2, f"{exc.filename}: {exc.strerror or type(exc).__name__}"
    if isinstance(exc, OSError):
        return 1, exc.strerror or str(exc)
    return 1, (
        f"unexpected {type(exc).__name__}: {exc} "
        f"(run with {DEBUG_FLAG} or {DEBUG_VARIABLE}=1 for the traceback)"
    )


def _debug_requested(args: Sequence[str]) -> bool:
    return DEBUG_FLAG in args or os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")


def _is_usage_error(exc: Exception) -> bool:
    """A click exception (typer vendors click, so the classes are matched by their API)."""
    return callable(getattr(exc, "format_message", None)) and isinstance(
        getattr(exc, "exit_code", None), int
    )


def _report_usage(exc: Any) -> int:
    """One line for a usage mistake; the help text when no command was given."""
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
        typer.echo(ctx.get_help())
    else:
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        err_line(exc.format_message() + hint)
    code: int = exc.exit_code
    return code


class ToolmeshGroup(TyperGroup):
    """typer's group, whose ``main`` reports every failure the same way."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        arguments = list(sys.argv[1:] if args is None else args)
        debug = _debug_requested(arguments)
        arguments = [a for a in arguments if a != DEBUG_FLAG]
        try:
            result = super().main(
                arguments, prog_name, complete_var, standalone_mode=False, **extra
            )
            code = result if isinstance(result, int) else 0
        except typer.Abort:
            err_line("aborted")
            code = 1
        except Exception as exc:
            if _is_usage_error(exc):
                code = _report_usage(exc)
            elif debug:
                raise
            else:
                code, message = explain(exc)
                err_line(message)
        if standalone_mode:
            sys.exit(code)
        return code
