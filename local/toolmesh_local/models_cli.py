"""``toolmesh models``: the local model store the toolbox's transformer models load from.

Registered by :func:`toolmesh_local.cli.register`. The store lives in
``TOOLMESH_MODEL_DIR`` (default ``~/.cache/toolmesh/models``); the mesh must
see the same directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from toolmesh.cli.common import console, fail

models_app = typer.Typer(
    help="Model weights for the toolbox functions: list, pull (by pinned revision), verify.",
    no_args_is_help=True,
)

StoreOpt = Annotated[
    Path | None,
    typer.Option(
        "--store", help="Store directory (default TOOLMESH_MODEL_DIR or ~/.cache/toolmesh/models)."
    ),
]


@models_app.command("ls")
def list_models(store: StoreOpt = None) -> None:
    """List the models the store knows, and which are installed at which revision."""
    from toolmesh_models.store import CATALOG, ModelStore, StoreError

    model_store = ModelStore(store)
    try:
        installed = model_store.installed()
    except StoreError as exc:
        raise fail(str(exc)) from exc
    table = Table("name", "hub repository", "functions", "installed revision", "size")
    for name in sorted(set(CATALOG) | set(installed)):
        entry = CATALOG.get(name)
        record = installed.get(name)
        table.add_row(
            name,
            record.repo if record else entry.repo if entry else "",
            ", ".join(entry.functions) if entry else "",
            record.revision[:12] if record else "[yellow]not installed[/yellow]",
            f"{record.size_bytes / 1e6:.1f} MB" if record else "",
        )
    console.print(f"model store: {model_store.root}")
    console.print(table)


@models_app.command()
def pull(
    name: str,
    revision: Annotated[
        str | None,
        typer.Option(help="Commit to pull (default: the catalog's, else main's current commit)."),
    ] = None,
    source: Annotated[
        Path | None,
        typer.Option(
            "--from", help="Install a snapshot folder copied from a machine with hub access."
        ),
    ] = None,
    store: StoreOpt = None,
) -> None:
    """Install NAME's weights into the store, recording revision and sha256 per file."""
    from toolmesh_models.store import CATALOG, ModelStore, StoreError

    model_store = ModelStore(store)
    if name not in CATALOG:
        raise fail(f"unknown model {name!r}; the store knows: {', '.join(sorted(CATALOG))}", 2)
    try:
        if source is not None:
            record = model_store.add(name, source, revision=revision or "local")
        else:
            console.print(f"pulling {CATALOG[name].repo} into {model_store.root} …")
            record = model_store.pull(name, revision=revision)
    except StoreError as exc:
        raise fail(str(exc)) from exc
    console.print(
        f"installed {name} at revision {record.revision} ({len(record.files)} files, "
        f"{record.size_bytes / 1e6:.1f} MB) in {record.path}; restart the mesh to load it"
    )


@models_app.command()
def verify(store: StoreOpt = None) -> None:
    """Recompute the sha256 of every installed file; exit 1 if any differs or is missing."""
    from toolmesh_models.store import ModelStore, StoreError

    model_store = ModelStore(store)
    try:
        problems = model_store.verify()
    except StoreError as exc:
        raise fail(str(exc)) from exc
    if not problems:
        console.print(f"model store {model_store.root}: nothing installed")
        return
    for name, found in sorted(problems.items()):
        if found:
            console.print(f"[red]{name}: {len(found)} problem(s)[/red]")
            for line in found:
                console.print(f"  {line}")
        else:
            console.print(f"[green]{name}: ok[/green]")
    if any(problems.values()):
        raise typer.Exit(1)
