"""CPU per process group and GPU utilisation, sampled while a batch runs.

The DiCE-C paper's central figure is hardware utilisation: decomposed, concurrent
serving keeps the GPUs busy where a monolith leaves them idle between its serial
steps. ``UtilisationSampler`` records that during a run: every ``interval``
seconds, the CPU each *process group* used (Triton, the gateway, the client:
each a set of root process ids and their descendants), the whole machine's CPU
(other work on the machine shows up as the difference) and, where NVML
(``nvidia-ml-py``) finds GPUs, each GPU's utilisation and memory. One JSON line
per sample, so the file is readable while the run goes on and after a crash.

``summarise_utilisation`` turns samples into what ``toolmesh report`` prints:
mean and peak per group and the *idle fraction*, the share of samples in which
a group (or GPU) was below ``IDLE_PERCENT``.

CPU percentages are of one core (a process group using two cores fully reads
200 %), as ``top`` shows them; ``machine`` is of all cores (100 % = every core
busy). Sampling needs ``psutil`` (``pip install 'toolmesh[utilisation]'``);
summarising a file does not.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from toolmesh._extensions import missing

__all__ = [
    "IDLE_PERCENT",
    "GroupUtilisation",
    "UtilisationSampler",
    "UtilisationSummary",
    "load_utilisation",
    "summarise_utilisation",
]

log = logging.getLogger(__name__)

#: Below this many percent (of one core, or of a GPU) a sample counts as idle.
IDLE_PERCENT = 5.0


def _psutil() -> Any:
    try:
        import psutil
    except ImportError as exc:
        raise missing("utilisation", "sampling CPU utilisation") from exc
    return psutil


class _Gpus:
    """NVML handles, or none: absent NVML (or no GPU) means GPU utilisation is not reported."""

    def __init__(self) -> None:
        self.nvml: Any = None
        self.handles: list[Any] = []
        try:
            import pynvml

            pynvml.nvmlInit()
            self.handles = [
                pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())
            ]
            self.nvml = pynvml
        except Exception as exc:  # ImportError, NVMLError (no driver): not reported
            log.debug("no GPU utilisation: %s", exc)

    def sample(self) -> list[dict[str, float]]:
        rows = []
        for index, handle in enumerate(self.handles):
            rates = self.nvml.nvmlDeviceGetUtilizationRates(handle)
            memory = self.nvml.nvmlDeviceGetMemoryInfo(handle)
            rows.append(
                {
                    "index": index,
                    "util": float(rates.gpu),
                    "mem_used_mb": memory.used / 2**20,
                    "mem_total_mb": memory.total / 2**20,
                }
            )
        return rows

    def close(self) -> None:
        if self.nvml is not None:
            try:
                self.nvml.nvmlShutdown()
            except Exception as exc:
                log.debug("nvmlShutdown: %s", exc)


class UtilisationSampler:
    """Samples CPU per process group (and GPUs) on a thread, one JSON line per sample.

    A process belongs to the group whose root it descends from most directly: a
    client that started Triton as its child does not count Triton's CPU as its
    own when Triton is a group of its own. Processes that appear during the run
    (Triton's python-backend stubs) join their group at the next sample.

    Use as a context manager around the run, or ``start()`` / ``stop()``.

    Args:
        path: JSON-lines file the samples are written to (truncated first).
        groups: Group name → root process ids; descendants are included.
        interval: Seconds between samples.
        gpus: Sample GPUs through NVML where available.
    """

    def __init__(
        self,
        path: Path,
        groups: Mapping[str, Sequence[int]],
        *,
        interval: float = 0.5,
        gpus: bool = True,
    ) -> None:
        self.path = path
        self.groups = {name: list(pids) for name, pids in groups.items()}
        self.interval = interval
        self._psutil = _psutil()
        self._gpus = _Gpus() if gpus else None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: dict[int, float] = {}
        self._processes: dict[int, Any] = {}
        self.samples = 0

    def _members(self) -> dict[str, list[Any]]:
        """Each group's live processes; a descendant that is another group's root is not walked."""
        roots = {pid: name for name, pids in self.groups.items() for pid in pids}
        members: dict[str, list[Any]] = {name: [] for name in self.groups}
        for name, pids in self.groups.items():
            stack = list(pids)
            while stack:
                pid = stack.pop()
                process = self._processes.get(pid)
                try:
                    if process is None:
                        process = self._processes[pid] = self._psutil.Process(pid)
                    children = process.children()
                except self._psutil.Error:
                    self._processes.pop(pid, None)
                    continue
                members[name].append(process)
                stack.extend(c.pid for c in children if c.pid not in roots)
                for child in children:
                    if child.pid not in self._processes:
                        self._processes[child.pid] = child
        return members

    def _cpu_seconds(self, process: Any) -> float:
        times = process.cpu_times()
        return float(times.user + times.system)

    def sample(self, previous_t: float) -> dict[str, Any]:
        """One sample: CPU each group used since ``previous_t``, in percent of one core."""
        now = time.time()
        elapsed = max(now - previous_t, 1e-6)
        cpu: dict[str, float] = {}
        for name, processes in self._members().items():
            used = 0.0
            for process in processes:
                try:
                    total = self._cpu_seconds(process)
                    created = process.create_time()
                except self._psutil.Error:
                    continue
                before = self._seen.get(process.pid)
                if before is None:  # new: all of it is this interval's if it started within it
                    before = 0.0 if created >= previous_t else total
                used += max(total - before, 0.0)
                self._seen[process.pid] = total
            cpu[name] = 100.0 * used / elapsed
        row: dict[str, Any] = {
            "t": now,
            "cpu": cpu,
            "machine": float(self._psutil.cpu_percent(interval=None)),
            "cores": os.cpu_count() or 1,
        }
        if self._gpus is not None and self._gpus.handles:
            row["gpus"] = self._gpus.sample()
        return row

    def _loop(self) -> None:
        self._psutil.cpu_percent(interval=None)  # primes the machine counter (kept per thread)
        with self.path.open("a") as out:
            previous = time.time()
            while True:
                stopping = self._stop.wait(self.interval)
                # the last, partial interval is sampled too: a run shorter than one
                # interval still has a sample
                row = self.sample(previous)
                previous = row["t"]
                out.write(json.dumps(row) + "\n")
                out.flush()
                self.samples += 1
                if stopping:
                    return

    def start(self) -> None:
        """Prime the counters (CPU used before now is not the run's) and start sampling."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")
        for processes in self._members().values():
            for process in processes:
                try:
                    self._seen[process.pid] = self._cpu_seconds(process)
                except self._psutil.Error:
                    continue
        self._thread = threading.Thread(target=self._loop, name="utilisation", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Take a last sample (of the partial interval), stop sampling and release NVML."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._gpus is not None:
            self._gpus.close()

    def __enter__(self) -> UtilisationSampler:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def load_utilisation(path: Path) -> list[dict[str, Any]]:
    """The samples of a file ``UtilisationSampler`` wrote (a torn last line is dropped)."""
    samples = []
    for line in path.read_text().splitlines():
        try:
            samples.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return samples


@dataclass(frozen=True)
class GroupUtilisation:
    """Utilisation of one process group or GPU over a run (percent; see the module doc)."""

    name: str
    mean: float
    peak: float
    idle_fraction: float

    @classmethod
    def of(cls, name: str, values: Sequence[float]) -> GroupUtilisation:
        return cls(
            name=name,
            mean=statistics.fmean(values),
            peak=max(values),
            idle_fraction=sum(1 for v in values if v < IDLE_PERCENT) / len(values),
        )


@dataclass(frozen=True)
class UtilisationSummary:
    samples: int
    seconds: float
    groups: list[GroupUtilisation]
    machine: GroupUtilisation
    gpus: list[GroupUtilisation] = field(default_factory=list)
    gpu_memory_mb: list[float] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "seconds": self.seconds,
            "idle_percent": IDLE_PERCENT,
            "groups": [vars(g) for g in self.groups],
            "machine": vars(self.machine),
            "gpus": [vars(g) for g in self.gpus],
            "gpu_memory_peak_mb": self.gpu_memory_mb,
        }


def summarise_utilisation(samples: Sequence[Mapping[str, Any]]) -> UtilisationSummary:
    """Mean, peak and idle fraction per group, of the machine and of every GPU.

    Raises:
        ValueError: There are no samples.
    """
    if not samples:
        raise ValueError("no utilisation samples")
    names = sorted({name for s in samples for name in s["cpu"]})
    groups = [GroupUtilisation.of(n, [float(s["cpu"].get(n, 0.0)) for s in samples]) for n in names]
    gpu_count = max((len(s.get("gpus", [])) for s in samples), default=0)
    gpus, memory = [], []
    for index in range(gpu_count):
        rows = [s["gpus"][index] for s in samples if len(s.get("gpus", [])) > index]
        gpus.append(GroupUtilisation.of(f"gpu{index}", [float(r["util"]) for r in rows]))
        memory.append(max(float(r["mem_used_mb"]) for r in rows))
    times = [float(s["t"]) for s in samples]
    return UtilisationSummary(
        samples=len(samples),
        seconds=max(times) - min(times),
        groups=groups,
        machine=GroupUtilisation.of("machine", [float(s["machine"]) for s in samples]),
        gpus=gpus,
        gpu_memory_mb=memory,
    )
