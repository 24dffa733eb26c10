"""Commands of the other parts: registered by their plugins, or explained when absent."""

from __future__ import annotations

import typer
from rich.markup import escape

from toolmesh._extensions import PARTS, missing, plugins
from toolmesh.cli.common import err, fail

__all__ = ["PLUGIN_COMMANDS", "register_plugins"]

#: The commands each part's plugin adds; without the part, they say what to install.
PLUGIN_COMMANDS: dict[str, tuple[str, ...]] = {
    "local": ("up", "down", "demo", "trace", "models", "token"),
    "codegen": ("ask", "parallelize"),
}


def _names(app: typer.Typer) -> set[str]:
    names = {g.name for g in app.registered_groups if g.name}
    for command in app.registered_commands:
        if command.name:
            names.add(command.name)
        elif command.callback is not None:
            names.add(command.callback.__name__.replace("_", "-"))
    return names


def _placeholder(app: typer.Typer, name: str, part: str) -> None:
    distribution, extra = PARTS[part]

    def unavailable() -> None:
        raise fail(str(missing(part, f"`toolmesh {name}`")))

    app.command(
        name,
        help=f"(not installed: needs {distribution}; pip install '{escape(extra)}')",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        add_help_option=False,
    )(unavailable)


def register_plugins(app: typer.Typer) -> None:
    """Let every installed ``toolmesh.cli`` plugin add its commands, then fill the gaps."""
    for entry in plugins():
        try:
            register = entry.load()
            register(app)
        except Exception as exc:  # a broken plugin must not take the client's commands down
            err.print(f"warning: CLI plugin {entry.name!r} ({entry.value}) failed: {exc}")
    present = _names(app)
    for part, names in PLUGIN_COMMANDS.items():
        for name in names:
            if name not in present:
                _placeholder(app, name, part)
