"""Runs the real ``tritonserver`` that ships in the ``nvidia-pytriton`` wheel.

The wheel carries the server, the python backend and one backend stub per
Python version, but not laid out as Triton expects, so ``prepare_backends``
builds a backend directory (backend + the stub for the running Python) and
``TritonServer`` starts the binary with the wheel's libraries on the loader
path and this environment's ``bin`` first on ``PATH`` (that is how the stub,
which embeds the system libpython, finds this environment's packages).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from toolmesh_local._managed import Managed
from toolmesh_models.errors import WEIGHTS_MISSING

__all__ = [
    "TritonInstall",
    "TritonPorts",
    "TritonServer",
    "TritonStartError",
    "free_port",
    "prepare_backends",
    "stop_process",
    "trace_args",
]


class TritonStartError(RuntimeError):
    """Triton could not be found, started, or did not become ready; carries its log tail."""


@dataclass(frozen=True, slots=True)
class TritonInstall:
    """Where the pieces of the pytriton wheel are."""

    binary: Path
    python_backend: Path
    stub: Path
    lib_dir: Path

    @classmethod
    def find(cls) -> TritonInstall:
        """Locate tritonserver in this environment's site-packages."""
        site = Path(sysconfig.get_paths()["purelib"])
        root = site / "pytriton" / "tritonserver"
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        install = cls(
            binary=root / "bin" / "tritonserver",
            python_backend=root / "backends" / "python",
            stub=root / "python_backend_stubs" / version / "triton_python_backend_stub",
            lib_dir=site / "nvidia_pytriton.libs",
        )
        for path in (install.binary, install.python_backend, install.stub, install.lib_dir):
            if not path.exists():
                raise TritonStartError(
                    f"{path} is missing: install the nvidia-pytriton==0.7.0 wheel into this "
                    f"environment (Python {version}) with `make setup`"
                )
        return install


def prepare_backends(install: TritonInstall, dest: Path) -> Path:
    """A ``--backend-directory`` holding the python backend and this Python's stub."""
    python_dir = dest / "python"
    if python_dir.exists():
        shutil.rmtree(python_dir)
    shutil.copytree(
        install.python_backend, python_dir, ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy2(install.stub, python_dir / "triton_python_backend_stub")
    return dest


def trace_args(endpoint: str | None, rate: int = 1) -> tuple[str, ...]:
    """tritonserver flags that export OpenTelemetry spans to an OTLP/HTTP ``host:port``.

    Triton joins the caller's trace from the request's ``traceparent`` header.
    It samples one request in ``rate``; rate 1 (every request) is exercised
    under concurrent load by the test suite. None: no tracing (the default).
    """
    if endpoint is None:
        return ()
    host = endpoint.removeprefix("http://").rstrip("/")
    return (
        "--trace-config=mode=opentelemetry",
        f"--trace-config=opentelemetry,url={host}/v1/traces",
        f"--trace-config=rate={rate}",
        "--trace-config=level=TIMESTAMPS",
        "--trace-config=opentelemetry,resource=service.name=triton",
    )


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """SIGTERM a child, SIGKILL it if it is still there after ``timeout``, and reap it."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)


def free_port() -> int:
    """A port that was free a moment ago on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True, slots=True)
class TritonPorts:
    grpc: int = field(default_factory=free_port)
    http: int = field(default_factory=free_port)
    metrics: int = field(default_factory=free_port)


class TritonServer(Managed):
    """One tritonserver process on loopback ports; a context manager that always stops it.

    Args:
        repository: A rendered model repository (see ``repository.render_repository``).
        workdir: Where the backend directory and ``triton.log`` go.
        ports: Loopback ports; free ones by default.
        extra_args: More tritonserver flags (e.g. tracing).
        host: The address it listens on (and is reached at); loopback by default.
        prefix: A command it runs under, e.g. ``ip netns exec <node>`` to run it on a
            rehearsal "node" (:mod:`toolmesh_local.netns`) at that node's address.
    """

    def __init__(
        self,
        repository: Path,
        workdir: Path,
        *,
        ports: TritonPorts | None = None,
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        trace_endpoint: str | None = None,
        trace_rate: int = 1,
        host: str = "127.0.0.1",
        prefix: tuple[str, ...] = (),
    ) -> None:
        self.repository = repository
        self.host = host
        self.prefix = prefix
        self.workdir = workdir
        self.ports = ports or TritonPorts()
        self.extra_args = extra_args + trace_args(trace_endpoint, trace_rate)
        self.extra_env = env or {}
        self.log_path = workdir / "triton.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.ports.grpc}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.ports.http}"

    def command(self, install: TritonInstall, backends: Path) -> list[str]:
        return [
            *self.prefix,
            str(install.binary),
            f"--model-repository={self.repository}",
            f"--backend-directory={backends}",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.ports.grpc}",
            f"--http-address={self.host}",
            f"--http-port={self.ports.http}",
            f"--metrics-address={self.host}",
            f"--metrics-port={self.ports.metrics}",
            "--log-verbose=0",
            # A model whose weights are not in the model store fails to load; the
            # server keeps serving the others (the gateway lists that function as
            # unavailable, with the reason). Other load failures still stop start().
            "--exit-on-error=false",
            "--strict-readiness=false",
            *self.extra_args,
        ]

    def environment(self, install: TritonInstall) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (str(install.lib_dir), env.get("LD_LIBRARY_PATH", "")) if p
        )
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 120.0, *, new_session: bool = False) -> None:
        """Start Triton and wait until it reports ready, or raise with its log tail."""
        install = TritonInstall.find()
        self.workdir.mkdir(parents=True, exist_ok=True)
        backends = prepare_backends(install, self.workdir / "backends")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command(install, backends),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.environment(install),
                start_new_session=new_session,
            )
        self.wait_ready(timeout)
        try:
            self.check_models()
        except TritonStartError:
            self.stop()
            raise

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.ports.metrics}/metrics"

    def successes(self, model: str) -> int:
        """Requests of ``model`` this server answered successfully (its own statistics)."""
        url = f"{self.http_url}/v2/models/{model}/stats"
        with urllib.request.urlopen(url, timeout=10) as response:
            stats = json.load(response)
        return sum(
            int(s["inference_stats"]["success"]["count"]) for s in stats.get("model_stats", [])
        )

    def model_states(self) -> list[dict[str, str]]:
        """The repository index: every model's ``name``, ``state`` and (on failure) ``reason``."""
        request = urllib.request.Request(
            f"{self.http_url}/v2/repository/index", data=b"{}", method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            states: list[dict[str, str]] = json.load(response)
        return states

    def check_models(self) -> None:
        """Refuse a start where a model failed to load for a reason other than missing weights.

        Missing weights are an expected state (the function is listed as
        unavailable); anything else is a broken model and should stop the mesh,
        as Triton's own exit-on-error would.
        """
        broken = [
            f"{m['name']}: {m.get('reason', '').strip()}"
            for m in self.model_states()
            if m.get("state") == "UNAVAILABLE" and WEIGHTS_MISSING not in m.get("reason", "")
        ]
        if broken:
            raise TritonStartError(
                "models failed to load:\n" + "\n".join(broken) + f"\n(see {self.log_path})"
            )

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise TritonStartError(
                    f"tritonserver exited with code {self.process.returncode} during start-up; "
                    f"last lines of {self.log_path}:\n{self.log_tail()}"
                )
            if self.is_ready():
                return
            time.sleep(0.2)
        self.stop()
        raise TritonStartError(
            f"tritonserver was not ready after {timeout:.0f}s; last lines of "
            f"{self.log_path}:\n{self.log_tail()}"
        )

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.http_url}/v2/health/ready", timeout=1) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; idempotent."""
        process, self.process = self.process, None
        stop_process(process, timeout)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def __enter__(self) -> TritonServer:
        if self.process is None:
            self.start()
        return self
