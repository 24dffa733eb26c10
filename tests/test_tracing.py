"""One SDK call is one trace: SDK → gateway → Triton spans, parent to child, received by
a real OTLP receiver (rotel). Triton tracing is also exercised under concurrent load."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import toolmesh
from toolmesh_local.mesh import LocalMesh
from toolmesh_local.otlp import Span, read_spans, render_tree


@pytest.fixture(scope="module")
def traced_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    mesh = LocalMesh(
        run_dir=tmp_path_factory.mktemp("traced"), models=["find", "greyscale"], trace=True
    )
    mesh.start(timeout=180)
    try:
        yield mesh
    finally:
        mesh.stop()


def spans_of(mesh: LocalMesh, trace_id: str, expected: int, timeout: float = 30) -> list[Span]:
    """Spans arrive in batches from three processes: wait until the trace is complete."""
    assert mesh.receiver is not None
    deadline = time.monotonic() + timeout
    while True:
        spans = [s for s in mesh.receiver.spans() if s.trace_id == trace_id]
        if len(spans) >= expected or time.monotonic() > deadline:
            return spans
        time.sleep(0.5)


def test_one_sdk_call_is_one_trace_across_sdk_gateway_and_triton(
    traced_mesh: LocalMesh, tmp_path: Path
) -> None:
    # The SDK side runs in its own process, configured only by the standard variable.
    program = tmp_path / "one_call.py"
    program.write_text(
        textwrap.dedent(
            f"""
            import asyncio, numpy as np, toolmesh
            from opentelemetry import trace
            from toolmesh.tracing import configure_tracing
            shutdown = configure_tracing("test-client")
            async def main():
                async with toolmesh.Client({traced_mesh.address!r}) as client:
                    with trace.get_tracer("test").start_as_current_span("user-task") as span:
                        await client.call("greyscale", image=np.zeros((16, 16, 3), np.uint8))
                        print(format(span.get_span_context().trace_id, "032x"))
            asyncio.run(main())
            shutdown()
            """
        )
    )
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": traced_mesh.trace_endpoint or ""}
    done = subprocess.run(
        [sys.executable, str(program)], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    trace_id = done.stdout.strip().splitlines()[-1]

    spans = spans_of(traced_mesh, trace_id, expected=8)
    by_id = {s.span_id: s for s in spans}
    services = {s.service for s in spans}
    assert {"test-client", "toolmesh-gateway", "triton"} <= services, render_tree(spans, trace_id)

    def chain(span: Span) -> list[str]:
        names = []
        while span is not None:
            names.append(f"{span.service}:{span.name}")
            span = by_id.get(span.parent_id)
        return names

    compute = [s for s in spans if s.service == "triton" and s.name == "compute"]
    assert compute, render_tree(spans, trace_id)
    path = chain(compute[0])
    # Every hop is linked to its parent, from Triton's compute up to the user's span.
    assert path == [
        "triton:compute",
        "triton:greyscale",
        "triton:InferRequest",
        "toolmesh-gateway:triton.infer",
        "toolmesh-gateway:/toolmesh.v1.Functions/Call",
        "test-client:/toolmesh.v1.Functions/Call",
        "test-client:user-task",
    ], render_tree(spans, trace_id)
    assert any(s.name == "toolmesh.validate" for s in spans)


async def test_triton_tracing_survives_concurrent_load(
    traced_mesh: LocalMesh, street_jpeg: bytes
) -> None:
    async with toolmesh.Client(traced_mesh.address, timeout=120) as client:
        calls = [
            client.call("greyscale", image=np.zeros((32, 32, 3), np.uint8)) for _ in range(40)
        ] + [client.call("find", image=street_jpeg, object_name="person") for _ in range(8)]
        results = await asyncio.gather(*calls)
    assert all(r.size == (32, 32) for r in results[:40])
    assert all(len(r) >= 3 for r in results[40:])
    assert all(t.process is not None and t.process.poll() is None for t in traced_mesh.tritons)
    receiver = traced_mesh.receiver
    assert receiver is not None

    def requests_traced() -> int:
        spans = read_spans(receiver.log_path)
        return sum(1 for s in spans if s.service == "triton" and s.name == "InferRequest")

    deadline = time.monotonic() + 30  # Triton exports in batches
    while requests_traced() < 48 and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    assert requests_traced() >= 48  # every request traced (rate 1), none lost to a crash


def test_tracing_is_off_by_default(mesh: LocalMesh) -> None:
    assert mesh.trace_endpoint is None and mesh.receiver is None
    assert all(not any("trace-config" in a for a in t.extra_args) for t in mesh.tritons)
