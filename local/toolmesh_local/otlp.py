"""A local OTLP receiver for `toolmesh up --trace`: the ``rotel`` collector from PyPI.

rotel receives OTLP over gRPC and HTTP on loopback ports and writes every span
it receives to a log (its "detailed" debug output); with ``forward_to`` it
also exports them to another OTLP endpoint (Jaeger, Tempo, a vendor). This
module starts it and reads that log back into spans, so a user (and the test
suite) can see a trace without installing anything else.
"""

from __future__ import annotations

import re
import subprocess
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path

from toolmesh_local._managed import Managed
from toolmesh_local.triton import free_port, stop_process

__all__ = ["OtlpReceiver", "Span", "read_spans", "render_tree"]


@dataclass(frozen=True, slots=True)
class Span:
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    service: str


_FIELD = re.compile(r"^\s*(Trace ID|Parent ID|ID|Name)\s*:\s*(.*?)\s*$")
_SERVICE = re.compile(r"service\.name:\s*Str\((.*)\)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def read_spans(log: Path) -> list[Span]:
    """Spans from rotel's detailed trace log (resource blocks name the service)."""
    spans: list[Span] = []
    service = ""
    current: dict[str, str] = {}
    for raw in log.read_text(errors="replace").splitlines():
        line = _ANSI.sub("", raw)
        found = _SERVICE.search(line)
        if found:
            service = found.group(1)
            continue
        match = _FIELD.match(line)
        if not match:
            continue
        key, value = match.groups()
        if key == "Trace ID":
            current = {"trace": value}
        elif current:
            current[key] = value
            if key == "Name":
                spans.append(
                    Span(
                        trace_id=current["trace"],
                        span_id=current.get("ID", ""),
                        parent_id=current.get("Parent ID", ""),
                        name=value,
                        service=service,
                    )
                )
                current = {}
    return spans


def render_tree(spans: list[Span], trace_id: str) -> str:
    """One trace as an indented tree: ``service: span name`` per line."""
    members = [s for s in spans if s.trace_id == trace_id]
    ids = {s.span_id for s in members}
    children: dict[str, list[Span]] = {}
    for span in members:
        parent = span.parent_id if span.parent_id in ids else ""
        children.setdefault(parent, []).append(span)
    lines: list[str] = []

    def walk(parent: str, depth: int) -> None:
        for span in children.get(parent, []):
            lines.append(f"{'  ' * depth}{span.service}: {span.name}")
            walk(span.span_id, depth + 1)

    walk("", 0)
    return "\n".join(lines)


@dataclass
class OtlpReceiver(Managed):
    """A rotel process on loopback; ``http_endpoint`` is what exporters point at."""

    log_path: Path
    forward_to: str | None = None
    grpc_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @staticmethod
    def binary() -> Path:
        path = Path(sysconfig.get_paths()["purelib"]) / "rotel" / "rotel-agent"
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: install the `rotel` package (make setup)")
        return path

    def start(self, timeout: float = 15.0, *, new_session: bool = False) -> None:
        command = [
            str(self.binary()),
            "start",
            f"--otlp-grpc-endpoint=127.0.0.1:{self.grpc_port}",
            f"--otlp-http-endpoint=127.0.0.1:{self.http_port}",
            "--debug-log=traces",
            "--debug-log-verbosity=detailed",
        ]
        if self.forward_to:
            command += ["--exporter=otlp", f"--otlp-exporter-endpoint={self.forward_to}"]
        else:
            command += ["--exporter=blackhole"]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=new_session
            )
        deadline = time.monotonic() + timeout
        while "Starting Rotel" not in self.log_path.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"rotel did not start; see {self.log_path}")
            time.sleep(0.1)

    def spans(self) -> list[Span]:
        return read_spans(self.log_path)

    def stop(self) -> None:
        process, self.process = self.process, None
        stop_process(process, timeout=10)
