"""Soak: a long, bounded run of mixed calls through the gateway at high concurrency.

    .venv/bin/python -m perf.soak                          # 10,000 calls at concurrency 64
    .venv/bin/python -m perf.soak --calls 2000 --mix greyscale=1,find=1
    .venv/bin/python -m perf.soak --address HOST:PORT --gateway-pid PID
    .venv/bin/python -m perf.soak --name soak_overload \
        --gateway-arg=--max-in-flight=4 --gateway-arg=--max-queue=8   # overload on purpose

Starts its own mesh (Triton + gateway, only the models the mix needs) unless
``--address`` is given. Every answer is checked cheaply against a fact about
its input (greyscale is the ITU-R 601 luma of the pixels sent, a rotation is
``numpy.rot90`` of them, a resize has the requested size, a PNG decodes back
to the pixels, ``find`` gives the warm-up's detections), and a call whose
answer is wrong is counted as such, not as a success. The gateway's resident
memory (``VmRSS``) is sampled every half second: at the start (after a
warm-up), its peak and at the end.

Prints and writes perf/results/soak.json and the README table: calls by
outcome (OK, wrong, each gRPC status), p50/p99 per function and overall, the
RSS figures. Goals: no errors but deliberate overload rejections
(RESOURCE_EXHAUSTED), no wrong answers, RSS growth under 50 MB; the exit
status is 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import platform
import random
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

import toolmesh
from perf._harness import write_results
from toolmesh.data import STREET_FRAMES
from toolmesh_local.mesh import LocalMesh

#: Share of calls per function. ``find`` costs about 110 ms of CPU per call on the
#: 2-core machine, the others 1-5 ms: at 2% it is still a fifth of the CPU time.
DEFAULT_MIX = "greyscale=30,resize=18,rotate=20,convert_format=15,color_depth=15,find=2"
RSS_GOAL_MB = 50.0
OVERLOAD = "RESOURCE_EXHAUSTED"

MB = 1024 * 1024


def parse_mix(text: str) -> dict[str, float]:
    mix: dict[str, float] = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        name = name.strip()
        if name not in CHECKS:
            raise SystemExit(f"--mix: unknown function {name!r}; choose from {', '.join(CHECKS)}")
        mix[name] = float(weight or 1)
    total = sum(mix.values())
    if total <= 0:
        raise SystemExit("--mix: weights must add up to more than 0")
    return {name: weight / total for name, weight in mix.items()}


# --- calls and the checks of their answers -------------------------------------------

RNG = np.random.default_rng(2024)
PATTERN = RNG.integers(0, 256, size=(96, 128, 3), dtype=np.uint8)
LUMA = PATTERN.astype(np.float64) @ [0.299, 0.587, 0.114]
SMALL = RNG.integers(0, 256, size=(37, 53, 3), dtype=np.uint8)
DEEP = RNG.integers(0, 1024, size=(24, 40), dtype=np.uint16)  # 10-bit samples in uint16
DEEP_8BIT = np.round(DEEP.astype(np.float64) * 255 / 1023)
STREET = sorted(STREET_FRAMES.glob("*.jpg"))[0].read_bytes()
STREET_SIZE = Image.open(io.BytesIO(STREET)).size
STREET_MEAN = np.asarray(Image.open(io.BytesIO(STREET)).convert("RGB"), dtype=np.float64).mean(
    (0, 1)
)
RESIZES = [(160, 120), (320, 240), (97, 61)]
FORMATS = {"png": b"\x89PNG", "bmp": b"BM", "tiff": b"II*\x00"}  # lossless: must decode back


@dataclass(frozen=True)
class Spec:
    """One call and the check of its answer (True: right)."""

    arguments: dict[str, Any]
    check: Callable[[Any], bool]


def greyscale_spec(i: int) -> Spec:
    def check(out: Any) -> bool:
        grey = np.asarray(out, dtype=np.float64)
        return grey.shape == LUMA.shape and float(np.abs(grey - LUMA).max()) <= 1.0

    return Spec({"image": PATTERN}, check)


def resize_spec(i: int) -> Spec:
    width, height = RESIZES[i % len(RESIZES)]

    def check(out: Any) -> bool:
        if out.size != (width, height) or out.mode != "RGB":
            return False
        # Bilinear resampling keeps the mean colour: garbage pixels would not.
        mean = np.asarray(out, dtype=np.float64).mean((0, 1))
        return float(np.abs(mean - STREET_MEAN).max()) <= 6.0

    return Spec({"image": STREET, "width": width, "height": height}, check)


def rotate_spec(i: int) -> Spec:
    angle = (90, 180, 270)[i % 3]
    expected = np.rot90(SMALL, k=angle // 90)  # counter-clockwise, like the function
    return Spec(
        {"image": SMALL, "angle": angle},
        lambda out: np.array_equal(np.asarray(out), expected),
    )


def convert_spec(i: int) -> Spec:
    fmt = list(FORMATS)[i % len(FORMATS)]

    def check(out: Any) -> bool:
        data = out["data"]
        if not data.startswith(FORMATS[fmt]) or out["media_type"] != f"image/{fmt}":
            return False
        decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        return np.array_equal(decoded, SMALL)

    return Spec({"image": SMALL, "format": fmt}, check)


def color_depth_spec(i: int) -> Spec:
    def check(out: Any) -> bool:
        return np.array_equal(np.asarray(out, dtype=np.float64).reshape(DEEP.shape), DEEP_8BIT)

    return Spec({"image": DEEP, "bits": 10}, check)


class FindReference:
    """The detections of the warm-up call; every later ``find`` must give the same."""

    value: list[dict[str, Any]] | None = None


def same_detections(out: Any, reference: list[dict[str, Any]] | None) -> bool:
    if reference is None or not isinstance(out, list) or len(out) != len(reference):
        return False
    for got, want in zip(out, reference, strict=True):
        if got["label"] != want["label"] or abs(got["score"] - want["score"]) > 1e-3:
            return False
        if max(abs(a - b) for a, b in zip(got["box"], want["box"], strict=True)) > 1.0:
            return False
    return True


def find_spec(i: int) -> Spec:
    return Spec(
        {"image": STREET, "object_name": "person"},
        lambda out: same_detections(out, FindReference.value),
    )


CHECKS: dict[str, Callable[[int], Spec]] = {
    "greyscale": greyscale_spec,
    "resize": resize_spec,
    "rotate": rotate_spec,
    "convert_format": convert_spec,
    "color_depth": color_depth_spec,
    "find": find_spec,
}


# --- memory ---------------------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    """``VmRSS`` of a process, from /proc (no psutil in this environment)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class RssSampler:
    """Samples a process's RSS every ``interval`` seconds on a thread."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            self.samples.append((time.monotonic() - started, rss_bytes(self.pid)))
            self._stop.wait(self.interval)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((self.samples[-1][0] if self.samples else 0.0, rss_bytes(self.pid)))


# --- the run -------------------------------------------------------------------------


@dataclass
class Outcomes:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    by_status: Counter[str] = field(default_factory=Counter)
    by_function: dict[str, Counter[str]] = field(default_factory=dict)
    examples: dict[str, str] = field(default_factory=dict)

    def record(self, function: str, outcome: str, seconds: float, detail: str = "") -> None:
        self.by_status[outcome] += 1
        self.by_function.setdefault(function, Counter())[outcome] += 1
        if outcome == "OK":
            self.latencies.setdefault(function, []).append(seconds)
        elif detail and outcome not in self.examples:
            self.examples[outcome] = f"{function}: {detail}"[:300]


def schedule(mix: dict[str, float], calls: int, seed: int) -> list[str]:
    """Exactly ``round(share × calls)`` of each function, shuffled."""
    names = list(mix)
    counts = {n: int(mix[n] * calls) for n in names}
    for n in sorted(names, key=lambda n: mix[n] * calls - counts[n], reverse=True):
        if sum(counts.values()) >= calls:
            break
        counts[n] += 1
    order = [n for n in names for _ in range(counts[n])]
    random.Random(seed).shuffle(order)
    return order


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


def latency_summary(values: list[float]) -> dict[str, float | int]:
    ms = sorted(v * 1000 for v in values)
    return {"calls": len(ms), "p50_ms": percentile(ms, 0.50), "p99_ms": percentile(ms, 0.99)}


async def run_soak(
    address: str, gateway_pid: int | None, mix: dict[str, float], calls: int, concurrency: int
) -> dict[str, Any]:
    order = schedule(mix, calls, seed=calls)
    outcomes = Outcomes()
    async with toolmesh.Client(address, timeout=120) as client:
        # Warm-up: every function a few times (channels, model metadata caches, pools),
        # and the reference detections that every later `find` must reproduce.
        if "find" in mix:
            FindReference.value = await client.call("find", image=STREET, object_name="person")
            print(f"find reference: {len(FindReference.value)} people", flush=True)
        for name in mix:
            for i in range(8):
                spec = CHECKS[name](i)
                if not spec.check(await client.call(name, **spec.arguments)):
                    raise SystemExit(f"warm-up: {name} gave a wrong answer; not soaking")
        sampler = RssSampler(gateway_pid) if gateway_pid else None
        if sampler is not None:
            sampler.start()
        next_index = 0
        done = 0
        ramped: list[int] = []  # RSS once 10% of the calls are done: the ramp-up is over
        started = time.perf_counter()

        async def worker() -> None:
            nonlocal next_index, done
            while next_index < len(order):
                index = next_index
                next_index += 1
                name = order[index]
                spec = CHECKS[name](index)
                began = time.perf_counter()
                try:
                    out = await client.call(name, **spec.arguments)
                except toolmesh.RemoteError as exc:
                    outcomes.record(name, exc.code.name, 0.0, exc.details)
                except toolmesh.ToolmeshError as exc:
                    outcomes.record(name, type(exc).__name__, 0.0, str(exc))
                else:
                    seconds = time.perf_counter() - began
                    try:
                        right = spec.check(out)
                    except Exception as exc:  # a malformed answer is a wrong one
                        right, out = False, f"{type(exc).__name__}: {exc}"
                    if right:
                        outcomes.record(name, "OK", seconds)
                    else:
                        outcomes.record(name, "WRONG", seconds, repr(out)[:200])
                done += 1
                if done == max(1, len(order) // 10) and sampler is not None:
                    ramped.append(rss_bytes(sampler.pid))
                if done % 1000 == 0:
                    rate = done / (time.perf_counter() - started)
                    rss = (
                        f", gateway RSS {sampler.samples[-1][1] / MB:.1f} MB"
                        if sampler and sampler.samples
                        else ""
                    )
                    print(f"{done:6d}/{len(order)} calls, {rate:.0f}/s{rss}", flush=True)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
        if sampler is not None:
            sampler.stop()
    everything = [v for values in outcomes.latencies.values() for v in values]
    errors = {k: v for k, v in outcomes.by_status.items() if k not in ("OK",)}
    rss: dict[str, Any] = {}
    if sampler is not None and sampler.samples:
        values = [b for _, b in sampler.samples]
        rss = {
            "start_mb": values[0] / MB,
            "peak_mb": max(values) / MB,
            "end_mb": values[-1] / MB,
            "growth_mb": (values[-1] - values[0]) / MB,
            # From 10% of the calls on: growth once buffers and pools have reached their size.
            "after_ramp_mb": ramped[0] / MB if ramped else None,
            "growth_after_ramp_mb": (values[-1] - ramped[0]) / MB if ramped else None,
            "samples": len(values),
            "interval_s": sampler.interval,
        }
    unexpected = sum(v for k, v in errors.items() if k != OVERLOAD)
    return {
        "calls": calls,
        "concurrency": concurrency,
        "mix": {name: round(share, 4) for name, share in mix.items()},
        "calls_by_function": dict(Counter(order)),
        "seconds": seconds,
        "throughput": calls / seconds,
        "outcomes": dict(outcomes.by_status),
        "outcomes_by_function": {k: dict(v) for k, v in outcomes.by_function.items()},
        "error_examples": outcomes.examples,
        "latency": {
            "overall": latency_summary(everything),
            **{name: latency_summary(v) for name, v in sorted(outcomes.latencies.items())},
        },
        "gateway_rss": rss,
        "goals": {
            "no_errors_but_overload": unexpected == 0,
            "overload_rejections": errors.get(OVERLOAD, 0),
            "rss_growth_under_50mb": bool(rss) and rss["growth_mb"] < RSS_GOAL_MB,
        },
    }


def table(result: dict[str, Any]) -> str:
    outcomes = result["outcomes"]
    errors = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()) if k != "OK") or "none"
    rss = result["gateway_rss"]
    lines = [
        "| calls | concurrency | wall (s) | calls/s | OK | errors by status | p50 / p99 (ms) | gateway RSS start / peak / end (MB) |",
        "|---:|---:|---:|---:|---:|---|---:|---:|",
        f"| {result['calls']} | {result['concurrency']} | {result['seconds']:.0f} | "
        f"{result['throughput']:.0f} | {outcomes.get('OK', 0)} | {errors} | "
        f"{result['latency']['overall']['p50_ms']:.0f} / {result['latency']['overall']['p99_ms']:.0f} | "
        + (
            f"{rss['start_mb']:.1f} / {rss['peak_mb']:.1f} / {rss['end_mb']:.1f} "
            f"(**{rss['growth_mb']:+.1f}**) |"
            if rss
            else "not measured |"
        ),
        "",
        "| function | share | calls | OK | p50 (ms) | p99 (ms) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, share in result["mix"].items():
        lat = result["latency"].get(name, {"p50_ms": float("nan"), "p99_ms": float("nan")})
        lines.append(
            f"| {name} | {share:.0%} | {result['calls_by_function'].get(name, 0)} | "
            f"{result['outcomes_by_function'].get(name, {}).get('OK', 0)} | "
            f"{lat['p50_ms']:.1f} | {lat['p99_ms']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--address", help="an existing gateway instead of starting a mesh")
    parser.add_argument("--gateway-pid", type=int, help="its process id, to sample its RSS")
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--mix", default=DEFAULT_MIX, help=f"function=weight,... (default {DEFAULT_MIX})"
    )
    parser.add_argument(
        "--gateway-arg",
        action="append",
        default=[],
        help="passed to the gateway this script starts, e.g. --gateway-arg=--max-in-flight=4",
    )
    parser.add_argument(
        "--name", default="soak", help="results name: perf/results/NAME.json, README markers"
    )
    args = parser.parse_args()
    mix = parse_mix(args.mix)
    print(
        f"soak: {args.calls} calls at concurrency {args.concurrency}, mix "
        + ", ".join(f"{n} {s:.0%}" for n, s in mix.items()),
        flush=True,
    )
    started = time.time()
    if args.address:
        result = asyncio.run(
            run_soak(args.address, args.gateway_pid, mix, args.calls, args.concurrency)
        )
    else:
        with (
            tempfile.TemporaryDirectory() as run_dir,
            LocalMesh(
                run_dir=Path(run_dir), models=sorted(mix), gateway_args=tuple(args.gateway_arg)
            ) as mesh,
        ):
            assert mesh.gateway is not None
            result = asyncio.run(
                run_soak(mesh.address, mesh.gateway.pid, mix, args.calls, args.concurrency)
            )
    payload = {
        "benchmark": args.name,
        "gateway_args": args.gateway_arg,
        "date": time.strftime("%Y-%m-%d", time.gmtime(started)),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "inputs": {
            "greyscale": f"{PATTERN.shape[1]}x{PATTERN.shape[0]} RGB array",
            "resize": f"street frame_000.jpg ({STREET_SIZE[0]}x{STREET_SIZE[1]} JPEG) to {RESIZES}",
            "rotate": f"{SMALL.shape[1]}x{SMALL.shape[0]} RGB array, 90/180/270",
            "convert_format": f"{SMALL.shape[1]}x{SMALL.shape[0]} RGB array to {list(FORMATS)}",
            "color_depth": f"{DEEP.shape[1]}x{DEEP.shape[0]} 10-bit uint16 array",
            "find": "street frame_000.jpg, object_name=person",
        },
        **result,
    }
    markdown = table(result)
    path = write_results(args.name, payload, markdown)
    print(markdown)
    for outcome, example in result["error_examples"].items():
        print(f"  e.g. {outcome}: {example}")
    goals = result["goals"]
    rss = result["gateway_rss"]
    if rss and rss.get("after_ramp_mb") is not None:
        print(
            f"gateway RSS after 10% of the calls {rss['after_ramp_mb']:.1f} MB, "
            f"growth from there {rss['growth_after_ramp_mb']:+.1f} MB"
        )
    print(
        f"goals: no errors but overload rejections: {'met' if goals['no_errors_but_overload'] else 'MISSED'}; "
        f"RSS growth < {RSS_GOAL_MB:.0f} MB: {'met' if goals['rss_growth_under_50mb'] else 'MISSED'}"
    )
    print(f"wrote {path}")
    wrong = result["outcomes"].get("WRONG", 0)
    if wrong or not goals["no_errors_but_overload"] or not goals["rss_growth_under_50mb"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
