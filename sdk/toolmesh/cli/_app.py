"""Typer application; each command is a thin shell over the SDK or the local mesh."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

import toolmesh
from toolmesh.cli._args import parse_assignments, result_to_json

app = typer.Typer(
    name="toolmesh",
    help="Vision models served by Triton as typed, documented functions over gRPC.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True)

AddressOpt = Annotated[
    str | None,
    typer.Option(
        "--address", "-a", help="Gateway host:port (default TOOLMESH_ADDRESS or localhost:50051)."
    ),
]


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def _run(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except toolmesh.RemoteError as exc:
        raise _fail(f"{exc.code.name}: {exc.details}") from exc


@app.command()
def up(
    address: Annotated[str, typer.Option(help="Gateway listen address.")] = "",
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Start and return; stop with `toolmesh down`.")
    ] = False,
    placement: Annotated[Path | None, typer.Option(help="Placement file (models per GPU).")] = None,
    run_dir: Annotated[
        Path | None, typer.Option(help="Where logs and the rendered repository go.")
    ] = None,
    models: Annotated[
        str, typer.Option(help="Comma-separated models to serve (default all).")
    ] = "",
    nodes: Annotated[int, typer.Option(help="Triton servers to start, one per stand-in node.")] = 1,
    trace: Annotated[
        bool,
        typer.Option(
            help="Trace gateway and Triton into a local OTLP receiver (see `toolmesh trace`)."
        ),
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for readiness.")] = 180.0,
) -> None:
    """Start Triton and the gateway on this machine."""
    from toolmesh_gateway.local import LocalMesh, MeshState, default_run_dir
    from toolmesh_models.paths import PLACEMENT_FILE
    from toolmesh_models.server import TritonStartError

    address = address or os.environ.get("TOOLMESH_ADDRESS", "localhost:50051")
    run_dir = run_dir or default_run_dir()
    existing = MeshState.load(run_dir)
    if existing is not None:
        raise _fail(
            f"a mesh from {run_dir} is already up at {existing.address}; `toolmesh down` first"
        )
    mesh = LocalMesh(
        address,
        run_dir=run_dir,
        placement=placement or PLACEMENT_FILE,
        models=[m.strip() for m in models.split(",") if m.strip()] or None,
        nodes=nodes,
        trace=trace,
    )
    with console.status("starting Triton and the gateway…"):
        try:
            mesh.start(timeout, detach=detach)
        except (TritonStartError, TimeoutError, OSError, ValueError) as exc:
            raise _fail(str(exc)) from exc
    state = mesh.state()
    placement_text = f"GPUs {state.gpus}" if state.gpus else "CPU only (KIND_CPU)"
    console.print(
        f"[green]toolmesh is up[/green]: gateway [bold]{state.address}[/bold] → "
        f"Triton {', '.join(state.triton_urls)}; {len(state.models)} models on {placement_text}\n"
        f"KServe v2 (tritonclient, perf_analyzer) on the same address; metrics {state.metrics_url}\n"
        f"logs: {run_dir}/gateway.log, {run_dir}/triton*/triton.log\n"
        "[yellow]security: plaintext, no authentication[/yellow] (the local default; "
        "deploy with TLS and tokens: README, Security)"
    )
    if state.trace_log:
        console.print(
            f"tracing: OTLP receiver {mesh.trace_endpoint} → {state.trace_log}; for clients: "
            f"export OTEL_EXPORTER_OTLP_ENDPOINT={mesh.trace_endpoint}; view with `toolmesh trace`"
        )
    if detach:
        state.save(run_dir)
        console.print("detached; stop with `toolmesh down`")
        return
    stop = asyncio.Event()

    async def wait() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()

    try:
        console.print("press Ctrl-C to stop")
        asyncio.run(wait())
    finally:
        mesh.stop()
        console.print("stopped")


@app.command()
def down(run_dir: Annotated[Path | None, typer.Option()] = None) -> None:
    """Stop a mesh started with `toolmesh up --detach`."""
    from toolmesh_gateway.local import MeshState, default_run_dir, stop_detached

    state = MeshState.load(run_dir or default_run_dir())
    if state is None:
        raise _fail("no detached mesh is running (no state file)")
    for line in stop_detached(state):
        console.print(f"stopped {line}")


@app.command()
def status(
    address: AddressOpt = None, run_dir: Annotated[Path | None, typer.Option()] = None
) -> None:
    """Show the gateway's health and every Triton endpoint behind it."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from toolmesh._config import ClientSettings
    from toolmesh.v1 import mesh_pb2, mesh_pb2_grpc
    from toolmesh_gateway.local import MeshState, default_run_dir

    state = MeshState.load(run_dir or default_run_dir())
    settings = ClientSettings.resolve(address or (state.address if state else None))
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
        raise _fail(f"gateway {target}: {exc.code().name}: {exc.details()}") from exc
    serving = health.status == health_pb2.HealthCheckResponse.SERVING
    if not serving:
        status_name = health_pb2.HealthCheckResponse.ServingStatus.Name(health.status)
        err.print(f"[red]gateway {target}: {status_name}[/red] (no healthy Triton endpoint)")
    else:
        console.print(
            f"gateway {target}: [green]SERVING[/green] (toolmesh {reply.version}, "
            f"{reply.functions} functions)"
        )
    table = Table("Triton endpoint", "health", "models", "in flight", "calls", "ejections")
    for e in reply.endpoints:
        health = "[green]healthy[/green]" if e.healthy else f"[red]down[/red] {e.last_error}"
        table.add_row(
            e.url, health, ", ".join(e.models), str(e.in_flight), str(e.calls), str(e.failures)
        )
    console.print(table)
    if not serving:
        raise typer.Exit(1)


@app.command("ls")
def list_functions(address: AddressOpt = None) -> None:
    """List the registered functions."""

    async def fetch() -> list[toolmesh.FunctionInfo]:
        async with toolmesh.Client(address) as client:
            return await client.functions()

    table = Table("function", "model", "summary")
    for info in _run(fetch()):
        summary = info.documentation.splitlines()[0]
        if not info.available:
            summary = f"[red]unavailable:[/red] {info.unavailable_reason}"
        table.add_row(info.signature(), info.model, summary)
    console.print(table)


@app.command()
def describe(name: str, address: AddressOpt = None) -> None:
    """Show a function's documentation and schemas."""

    async def fetch() -> toolmesh.FunctionInfo:
        async with toolmesh.Client(address) as client:
            return await client.function(name)

    info = _run(fetch())
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
                if not image.is_file():
                    raise _fail(f"{image}: no such file")
                arguments["image"] = image
            return await client.call(name, **arguments)

    try:
        result = _run(invoke())
    except ValueError as exc:
        raise _fail(str(exc), 2) from exc
    sys.stdout.write(json.dumps(result_to_json(result, save, name), indent=2) + "\n")


@app.command()
def demo(
    address: AddressOpt = None,
    images: Annotated[
        Path | None, typer.Option(help="Folder of frames (default: the bundled street frames).")
    ] = None,
) -> None:
    """Count people and vehicles per frame, serially then concurrently (starts a mesh if needed)."""
    from toolmesh.cli._demo import run_demo

    code = run_demo(console, address, images)
    if code:
        raise typer.Exit(code)


@app.command("trace")
def show_trace(
    trace_id: Annotated[str | None, typer.Argument(help="Trace id (default: the latest).")] = None,
    run_dir: Annotated[Path | None, typer.Option()] = None,
) -> None:
    """Print a trace received by `toolmesh up --trace` as a span tree."""
    from toolmesh_gateway.local import MeshState, default_run_dir
    from toolmesh_gateway.otlp import read_spans, render_tree

    directory = run_dir or default_run_dir()
    state = MeshState.load(directory)
    log = Path(state.trace_log) if state and state.trace_log else directory / "traces.log"
    if not log.exists():
        raise _fail(f"no trace log at {log}; start the mesh with `toolmesh up --trace`")
    spans = read_spans(log)
    calls = [s for s in spans if s.name.endswith("Functions/Call")]
    chosen = trace_id or (calls[-1].trace_id if calls else (spans[-1].trace_id if spans else ""))
    tree = render_tree(spans, chosen)
    if not tree:
        raise _fail(f"no spans of trace {chosen!r} in {log}")
    console.print(f"trace {chosen}\n{tree}")


def main() -> None:
    from toolmesh.tracing import configure_tracing

    configure_tracing("toolmesh")
    app()


# Commands defined in their own modules register themselves on `app`.
from toolmesh.cli import _batch as _batch  # noqa: E402
from toolmesh.cli import _codegen as _codegen  # noqa: E402
from toolmesh.cli import _models as _models  # noqa: E402
from toolmesh.cli import _tokens as _tokens  # noqa: E402
