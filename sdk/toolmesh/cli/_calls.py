"""``ls``, ``describe``, ``call`` and ``status``: the client's view of a running mesh."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

import toolmesh
from toolmesh.cli._args import image_file, parse_assignments
from toolmesh.cli.common import AddressOpt, app, console, err, fail, run_async
from toolmesh.local_state import MeshState, default_run_dir
from toolmesh.wire import result_to_json

__all__ = ["call", "describe", "list_functions", "status", "unavailable_summary"]

_PULL = re.compile(r"toolmesh models pull ([\w.-]+)")


def unavailable_summary(reason: str) -> str:
    """The one thing to do about an unavailable function, short enough for one line."""
    pull = _PULL.search(reason)
    if pull is not None:
        return f"toolmesh models pull {pull.group(1)}"
    return reason.split(";")[0].strip() or "no Triton endpoint serves its model"


@app.command()
def status(
    address: AddressOpt = None, run_dir: Annotated[Path | None, typer.Option()] = None
) -> None:
    """Show the gateway's health and every Triton endpoint behind it."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from toolmesh.v1 import mesh_pb2, mesh_pb2_grpc

    state = MeshState.load(run_dir or default_run_dir())
    settings = toolmesh.ClientSettings.resolve(address or (state.address if state else None))
    target = settings.address
    if state is not None:
        console.print(
            f"local mesh in {state.run_dir}: gateway pid {state.gateway_pid}, "
            f"Triton pids {', '.join(map(str, state.triton_pids))}"
        )
    try:
        with settings.sync_channel() as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="toolmesh.v1.Functions"), timeout=3
            )
            reply = mesh_pb2_grpc.MeshStub(channel).Status(
                mesh_pb2.StatusRequest(), timeout=5, metadata=settings.auth_metadata() or None
            )
    except grpc.RpcError as exc:
        raise fail(f"gateway {target}: {exc.code().name}: {exc.details()}") from exc
    serving = health.status == health_pb2.HealthCheckResponse.SERVING
    if not serving:
        status_name = health_pb2.HealthCheckResponse.ServingStatus.Name(health.status)
        err.print(f"[red]gateway {target}: {status_name}[/red] (no healthy Triton endpoint)")
    else:
        console.print(
            f"gateway {target}: [green]SERVING[/green] (toolmesh {reply.version}, "
            f"{reply.functions} functions)"
        )
    pooled = any(e.pool for e in reply.endpoints)
    columns = ["pool", "pod"] if pooled else []
    table = Table(
        "Triton endpoint", *columns, "health", "models", "in flight", "calls", "ejections"
    )
    for e in reply.endpoints:
        health_text = "[green]healthy[/green]" if e.healthy else f"[red]down[/red] {e.last_error}"
        if e.draining:
            health_text += " [yellow]draining[/yellow]"
        where = [e.pool, e.pod] if pooled else []
        table.add_row(
            e.url,
            *where,
            health_text,
            ", ".join(e.models),
            str(e.in_flight),
            str(e.calls),
            str(e.failures),
        )
    console.print(table)
    if not serving:
        raise typer.Exit(1)


@app.command("ls")
def list_functions(address: AddressOpt = None) -> None:
    """List the registered functions, one line each (`describe` shows the whole story)."""

    async def fetch() -> list[toolmesh.FunctionInfo]:
        async with toolmesh.Client(address) as client:
            return await client.functions()

    table = Table("function", "model", "summary", box=None, pad_edge=False)
    for column in table.columns:
        column.no_wrap = True
        column.overflow = "ellipsis"
    for info in run_async(fetch()):
        summary = info.documentation.strip().splitlines()[0] if info.documentation else ""
        if not info.available:
            summary = f"[red]unavailable:[/red] {unavailable_summary(info.unavailable_reason)}"
        table.add_row(info.signature(), info.model, summary)
    console.print(table)


@app.command()
def describe(name: str, address: AddressOpt = None) -> None:
    """Show a function's documentation and schemas."""

    async def fetch() -> toolmesh.FunctionInfo:
        async with toolmesh.Client(address) as client:
            return await client.function(name)

    info = run_async(fetch())
    console.print(f"[bold]{info.signature()}[/bold]  (model {info.model})\n")
    if not info.available:
        console.print(f"[red]unavailable:[/red] {info.unavailable_reason}\n")
    console.print(info.documentation + "\n")
    console.print("parametersSchema:")
    console.print_json(json.dumps(info.parameters_schema))
    console.print("resultSchema:")
    console.print_json(json.dumps(info.result_schema))


@app.command()
def call(
    name: str,
    assignments: Annotated[list[str] | None, typer.Argument(help="key=value arguments")] = None,
    image: Annotated[Path | None, typer.Option(help="Image file for the `image` argument.")] = None,
    save: Annotated[
        Path | None, typer.Option(help="Directory to write image/binary results to.")
    ] = None,
    address: AddressOpt = None,
) -> None:
    """Call a function and print its result as JSON, e.g. `toolmesh call find --image a.jpg object_name=car`."""

    async def invoke() -> Any:
        async with toolmesh.Client(address) as client:
            info = await client.function(name)
            arguments = parse_assignments(assignments or [], info.parameters_schema)
            if image is not None:
                arguments["image"] = image_file("image", str(image))
            return await client.call(name, **arguments)

    try:
        result = run_async(invoke())
    except ValueError as exc:
        raise fail(str(exc), 2) from exc
    sys.stdout.write(json.dumps(result_to_json(result, save, name), indent=2) + "\n")
