"""OpenTelemetry set-up for toolmesh's entry points (CLI, gateway, batch runner).

Libraries only use ``opentelemetry-api``; an entry point calls
``configure_tracing`` once to install the SDK with the exporters the
environment asks for, and nothing is exported unless it does:

- ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``: OTLP
  over HTTP/protobuf to any collector (the exporter reads the standard
  ``OTEL_*`` variables itself);
- ``TOOLMESH_TRACE_FILE``: one JSON object per span, appended to that file.
"""

from __future__ import annotations

import atexit
import json
import os
from collections.abc import Callable
from typing import IO, Any

from opentelemetry import trace

from toolmesh._extensions import missing

__all__ = ["configure_tracing", "tracing_requested"]

_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def tracing_requested() -> bool:
    """Whether the environment asks for spans to be exported."""
    return any(os.environ.get(v) for v in (*_ENDPOINT_VARS, "TOOLMESH_TRACE_FILE"))


def _span_line(span: Any) -> str:
    return json.dumps(json.loads(span.to_json()), separators=(",", ":")) + "\n"


def configure_tracing(service_name: str) -> Callable[[], None] | None:
    """Install a tracer provider for ``service_name`` if exporting was requested.

    Returns a function that flushes and shuts the provider down (also
    registered at exit), or None when nothing was configured.
    """
    if not tracing_requested():
        return None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError as exc:  # the client alone carries only opentelemetry-api
        raise missing(
            "otel", "exporting traces (OTEL_EXPORTER_OTLP_*, TOOLMESH_TRACE_FILE)"
        ) from exc

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if any(os.environ.get(v) for v in _ENDPOINT_VARS):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace_file = os.environ.get("TOOLMESH_TRACE_FILE")
    handle: IO[str] | None = None
    if trace_file:
        handle = open(trace_file, "a", encoding="utf-8")  # noqa: SIM115 - closed at shutdown
        exporter = ConsoleSpanExporter(service_name=service_name, out=handle, formatter=_span_line)
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)

    def shutdown() -> None:
        provider.shutdown()
        if handle is not None and not handle.closed:
            handle.close()

    atexit.register(shutdown)
    return shutdown
