"""The local part's commands: ``up``, ``down``, ``demo``, ``trace``, ``models``, ``token``.

:func:`register` is the ``toolmesh.cli`` entry point of ``toolmesh-local``: the
client's CLI calls it with its typer app, so these commands appear in
``toolmesh --help`` exactly when this part is installed.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Annotated

import typer

from toolmesh.cli.common import AddressOpt, console, fail
from toolmesh.local_state import MeshState, default_run_dir
from toolmesh_local.models_cli import models_app
from toolmesh_local.tokens_cli import tokens_app

__all__ = ["down", "register", "show_trace", "up"]


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
    from toolmesh_local.mesh import LocalMesh
    from toolmesh_local.triton import TritonStartError
    from toolmesh_models.paths import PLACEMENT_FILE

    address = address or os.environ.get("TOOLMESH_ADDRESS", "localhost:50051")
    run_dir = run_dir or default_run_dir()
    existing = MeshState.load(run_dir)
    if existing is not None:
        raise fail(
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
            raise fail(str(exc)) from exc
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


def down(run_dir: Annotated[Path | None, typer.Option()] = None) -> None:
    """Stop a mesh started with `toolmesh up --detach`."""
    from toolmesh_local.mesh import stop_detached

    state = MeshState.load(run_dir or default_run_dir())
    if state is None:
        raise fail("no detached mesh is running (no state file)")
    for line in stop_detached(state):
        console.print(f"stopped {line}")


def demo(
    address: AddressOpt = None,
    images: Annotated[
        Path | None, typer.Option(help="Folder of frames (default: the bundled street frames).")
    ] = None,
) -> None:
    """Count people and vehicles per frame, serially then concurrently (starts a mesh if needed)."""
    from toolmesh_local.demo import run_demo

    code = run_demo(console, address, images)
    if code:
        raise typer.Exit(code)


def show_trace(
    trace_id: Annotated[str | None, typer.Argument(help="Trace id (default: the latest).")] = None,
    run_dir: Annotated[Path | None, typer.Option()] = None,
) -> None:
    """Print a trace received by `toolmesh up --trace` as a span tree."""
    from toolmesh_local.otlp import read_spans, render_tree

    directory = run_dir or default_run_dir()
    state = MeshState.load(directory)
    log = Path(state.trace_log) if state and state.trace_log else directory / "traces.log"
    if not log.exists():
        raise fail(f"no trace log at {log}; start the mesh with `toolmesh up --trace`")
    spans = read_spans(log)
    calls = [s for s in spans if s.name.endswith("Functions/Call")]
    chosen = trace_id or (calls[-1].trace_id if calls else (spans[-1].trace_id if spans else ""))
    tree = render_tree(spans, chosen)
    if not tree:
        raise fail(f"no spans of trace {chosen!r} in {log}")
    console.print(f"trace {chosen}\n{tree}")


def register(app: typer.Typer) -> None:
    """Add this part's commands to the ``toolmesh`` CLI (the ``toolmesh.cli`` entry point)."""
    app.command()(up)
    app.command()(down)
    app.command()(demo)
    app.command("trace")(show_trace)
    app.add_typer(models_app, name="models")
    app.add_typer(tokens_app, name="token")
