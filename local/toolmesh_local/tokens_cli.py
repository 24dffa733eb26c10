"""``toolmesh token``: make access tokens for a gateway that requires them.

The token is printed once and never stored: the tokens file gets only its
SHA-256 digest and its grant (see ``toolmesh_gateway.auth``). Registered by
:func:`toolmesh_local.cli.register`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from toolmesh.cli.common import err, fail

tokens_app = typer.Typer(help="Access tokens for the gateway (hashed in a tokens file).")


@tokens_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Who holds the token (shown in logs and limits).")],
    file: Annotated[
        Path, typer.Option("--file", "-f", help="Tokens file to add it to (created if missing).")
    ],
    functions: Annotated[
        str, typer.Option(help="Functions it may call, comma-separated, or '*' for all.")
    ] = "*",
    kserve: Annotated[
        bool, typer.Option(help="May it use the KServe v2 API (tritonclient, perf_analyzer)?")
    ] = False,
) -> None:
    """Make a token, add its digest to FILE, and print the token (only this once)."""
    from toolmesh_gateway.auth import TokenStore, TokenStoreError, new_token

    allowed = [f.strip() for f in functions.split(",") if f.strip()]
    if not allowed:
        raise fail("--functions names no function (use '*' for all)")
    document: Any = {"tokens": []}
    if file.exists():
        try:
            TokenStore.load(file)  # refuse to extend a file the gateway would reject
        except TokenStoreError as exc:
            raise fail(str(exc)) from exc
        document = yaml.safe_load(file.read_text(encoding="utf-8")) or {"tokens": []}
    if any(entry.get("name") == name for entry in document["tokens"]):
        raise fail(f"{file} already has a token named {name!r}")
    token = new_token()
    document["tokens"].append(TokenStore.entry(name, token, allowed, kserve=kserve))
    file.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    file.chmod(0o600)
    err.print(f"added {name!r} to {file}; the token (shown once, keep it secret):")
    typer.echo(token)
