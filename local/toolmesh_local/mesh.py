"""The embedded default: Triton and the gateway as child processes on one machine.

``toolmesh up``, ``make demo`` and the test fixtures all start the mesh through
``LocalMesh``, so what the tests exercise is exactly what users run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from toolmesh.local_state import STATE_FILE, MeshState, default_run_dir
from toolmesh_gateway.server import FUNCTIONS_SERVICE
from toolmesh_local._managed import Managed
from toolmesh_local.otlp import OtlpReceiver
from toolmesh_local.triton import TritonServer, TritonStartError, free_port, stop_process
from toolmesh_models.paths import FUNCTIONS_DIR, PLACEMENT_FILE
from toolmesh_models.placement import detect_gpus, load_placement
from toolmesh_models.repository import render_repository

__all__ = ["LocalMesh", "stop_detached", "wait_for_health"]

SERVER_SECURITY_VARIABLES = frozenset(
    {
        "TOOLMESH_SERVER_TLS_CERT",
        "TOOLMESH_SERVER_TLS_KEY",
        "TOOLMESH_SERVER_TLS_CLIENT_CA",
        "TOOLMESH_TOKENS_FILE",
    }
)


def wait_for_health(address: str, timeout: float, service: str = FUNCTIONS_SERVICE) -> None:
    """Block until the gateway reports ``service`` SERVING (which needs Triton ready)."""
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
                last_error = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.RpcError as exc:
                last_error = f"{exc.code().name}: {exc.details()}"
            time.sleep(0.2)
    raise TimeoutError(f"gateway at {address} not serving after {timeout:.0f}s ({last_error})")


class LocalMesh(Managed):
    """Triton + gateway on loopback. Use as a context manager, or ``start()``/``stop()``.

    Args:
        address: Gateway listen address; ``None`` picks a free loopback port.
        run_dir: Rendered model repository, backend directory, logs.
        placement: Placement file; the machine's GPUs decide KIND_GPU vs KIND_CPU.
        gpus: GPU indices to place on; default: detected.
        models: Only these models (default all).
        nodes: How many Triton servers to start, each a separate process on its
            own ports standing in for a node; the gateway balances over them.
        trace_endpoint: OTLP/HTTP endpoint (``http://host:port``) that the gateway
            and Triton export spans to; None leaves tracing off.
        trace: Start a local OTLP receiver (rotel, logging to ``traces.log`` in
            the run directory, forwarding to ``OTEL_EXPORTER_OTLP_ENDPOINT`` if
            set) and trace to it.
        env: Variables added to Triton's environment, e.g. ``TOOLMESH_MODEL_DIR``
            (the model store its models load weights from).
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        run_dir: Path | None = None,
        placement: Path = PLACEMENT_FILE,
        gpus: list[int] | None = None,
        models: list[str] | None = None,
        nodes: int = 1,
        gateway_args: tuple[str, ...] = (),
        trace_endpoint: str | None = None,
        trace: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        if nodes < 1:
            raise ValueError("nodes must be at least 1")
        self.address = address or f"127.0.0.1:{free_port()}"
        self.metrics_address = f"127.0.0.1:{free_port()}"
        self.run_dir = run_dir or default_run_dir()
        self.placement = placement
        self.gpus = detect_gpus() if gpus is None else gpus
        self.models = models
        self.nodes = nodes
        self.gateway_args = gateway_args
        self.env = dict(env or {})
        self.trace_endpoint = trace_endpoint
        self.receiver: OtlpReceiver | None = None
        if trace and trace_endpoint is None:
            self.receiver = OtlpReceiver(
                self.run_dir / "traces.log",
                forward_to=os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None,
            )
            self.trace_endpoint = self.receiver.http_endpoint
        self.tritons: list[TritonServer] = []
        self.gateway: subprocess.Popen[bytes] | None = None
        self.model_names: list[str] = []

    @property
    def gateway_log(self) -> Path:
        return self.run_dir / "gateway.log"

    def start(self, timeout: float = 180.0, *, detach: bool = False) -> None:
        """Render the repository, start Triton, start the gateway, wait until it serves."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.model_names = render_repository(
            self.run_dir / "repository",
            placement=load_placement(self.placement),
            gpus=self.gpus,
            models=self.models,
        )
        try:
            if self.receiver is not None:
                self.receiver.start(new_session=detach)
            for node in range(self.nodes):
                workdir = self.run_dir / ("triton" if self.nodes == 1 else f"triton-{node}")
                triton = TritonServer(
                    self.run_dir / "repository",
                    workdir,
                    trace_endpoint=self.trace_endpoint,
                    env=self.env,
                )
                self.tritons.append(triton)
                triton.start(timeout, new_session=detach)
            self._start_gateway(timeout, detach)
        except BaseException:
            self.stop()
            raise

    @property
    def triton(self) -> TritonServer | None:
        """The first (or only) Triton server."""
        return self.tritons[0] if self.tritons else None

    @property
    def metrics_url(self) -> str:
        return f"http://{self.metrics_address}/metrics"

    @property
    def triton_urls(self) -> list[str]:
        return [t.grpc_url for t in self.tritons]

    def _start_gateway(self, timeout: float, detach: bool) -> None:
        # The local mesh is plaintext without tokens (its health checks and `toolmesh up`'s
        # message say so); server security settings meant for a deployment stay out of it.
        env = {k: v for k, v in os.environ.items() if k not in SERVER_SECURITY_VARIABLES}
        env["PYTHONUNBUFFERED"] = "1"
        if self.trace_endpoint:
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = self.trace_endpoint
        command = [
            sys.executable,
            "-m",
            "toolmesh_gateway",
            f"--address={self.address}",
            f"--triton-url={','.join(self.triton_urls)}",
            f"--metrics-address={self.metrics_address}",
            f"--functions-dir={FUNCTIONS_DIR}",
            *self.gateway_args,
        ]
        with open(self.gateway_log, "wb") as log:
            self.gateway = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=detach
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.gateway.poll() is not None:
                raise TritonStartError(
                    f"gateway exited with code {self.gateway.returncode}; see {self.gateway_log}:\n"
                    + "\n".join(self.gateway_log.read_text(errors="replace").splitlines()[-20:])
                )
            try:
                wait_for_health(self.address, timeout=min(2.0, deadline - time.monotonic()))
                return
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise

    def state(self) -> MeshState:
        assert self.gateway is not None
        return MeshState(
            address=self.address,
            triton_urls=self.triton_urls,
            triton_pids=[t.pid for t in self.tritons if t.pid is not None],
            gateway_pid=self.gateway.pid,
            run_dir=str(self.run_dir),
            gpus=list(self.gpus),
            models=self.model_names,
            metrics_url=self.metrics_url,
            receiver_pid=self.receiver.process.pid
            if self.receiver is not None and self.receiver.process is not None
            else 0,
            trace_log=str(self.receiver.log_path) if self.receiver is not None else "",
        )

    def stop(self) -> None:
        """Stop the gateway first (it drains), then Triton. Idempotent."""
        gateway, self.gateway = self.gateway, None
        stop_process(gateway, timeout=15)
        for triton in self.tritons:
            triton.stop()
        if self.receiver is not None:
            self.receiver.stop()


def stop_detached(state: MeshState, timeout: float = 15.0) -> list[str]:
    """Stop the processes a detached ``toolmesh up`` left running; returns what was stopped."""
    stopped = []
    processes = [("gateway", state.gateway_pid), *(("triton", pid) for pid in state.triton_pids)]
    if state.receiver_pid:
        processes.append(("otlp receiver", state.receiver_pid))
    for name, pid in processes:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.1)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
            stopped.append(f"{name} (pid {pid})")
    (Path(state.run_dir) / STATE_FILE).unlink(missing_ok=True)
    return stopped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A child that exited but was not reaped still "exists"; look at its state.
    try:
        status = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return status != "Z"
