"""Runs Triton's ``perf_analyzer`` (from its own tool venv) against a KServe v2 endpoint.

perf_analyzer ships in the tritonclient 2.50.0 wheel, which the Makefile
installs into ``.venv-perf`` so the project keeps a current tritonclient. It
needs ``libcudart.so.12`` (from ``nvidia-cuda-runtime-cu12`` in that venv) and
the system's ``libb64``, even on a machine with no GPU.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PerfAnalyzerResult", "find_perf_analyzer", "image_input_data", "run_perf_analyzer"]

#: The Makefile's tool venv, at the top of the checkout this module is installed from.
PERF_VENV = Path(__file__).resolve().parents[2] / ".venv-perf"


@dataclass(frozen=True, slots=True)
class PerfAnalyzerResult:
    throughput: float  # inferences per second
    p50_us: float | None
    p99_us: float | None
    output: str


def find_perf_analyzer() -> tuple[Path, dict[str, str]]:
    """The binary and the environment it runs in (``TOOLMESH_PERF_VENV`` overrides the venv)."""
    venv = Path(os.environ.get("TOOLMESH_PERF_VENV", str(PERF_VENV)))
    binary = venv / "bin" / "perf_analyzer"
    if not binary.exists():
        raise FileNotFoundError(f"{binary} is missing: run `make setup`")
    cudart = sorted(venv.glob("lib/python3*/site-packages/nvidia/cuda_runtime/lib"))
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        [*(str(p) for p in cudart), env.get("LD_LIBRARY_PATH", "")]
    ).strip(os.pathsep)
    return binary, env


def image_input_data(path: Path, image: bytes, **scalars: object) -> Path:
    """A ``--input-data`` JSON file: the encoded image in ``image`` plus scalar inputs."""
    entry: dict[str, object] = {
        "image": {"b64": base64.b64encode(image).decode(), "shape": [len(image)]}
    }
    for name, value in scalars.items():
        entry[name] = [value]
    path.write_text(json.dumps({"data": [entry]}))
    return path


_THROUGHPUT = re.compile(r"Throughput: ([0-9.]+) infer/sec")
_P50 = re.compile(r"p50 latency: ([0-9]+) usec")
_P99 = re.compile(r"p99 latency: ([0-9]+) usec")


def run_perf_analyzer(
    url: str,
    model: str,
    *,
    input_data: Path,
    concurrency: int = 1,
    measurement_ms: int = 2000,
    timeout: float = 300,
    extra_args: tuple[str, ...] = (),
) -> PerfAnalyzerResult:
    """One perf_analyzer run over gRPC; raises ``RuntimeError`` with its output on failure."""
    binary, env = find_perf_analyzer()
    command = [
        str(binary),
        "-i", "grpc",
        "-u", url,
        "-m", model,
        "--input-data", str(input_data),
        "--concurrency-range", f"{concurrency}:{concurrency}",
        "--measurement-interval", str(measurement_ms),
        "--percentile", "99",
        # Two shared cores are noisy: accept windows within 100% of each other
        # rather than failing to "stabilise"; the numbers are still reported.
        "--stability-percentage", "100",
        "--max-trials", "6",
        *extra_args,
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    output = done.stdout + done.stderr
    match = _THROUGHPUT.search(output)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"perf_analyzer failed (exit {done.returncode}):\n{output[-3000:]}")
    p50, p99 = _P50.search(output), _P99.search(output)
    return PerfAnalyzerResult(
        throughput=float(match.group(1)),
        p50_us=float(p50.group(1)) if p50 else None,
        p99_us=float(p99.group(1)) if p99 else None,
        output=output,
    )
