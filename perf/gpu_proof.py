"""One-shot GPU proof: our model code, placement, Triton and the gateway on a lent GPU machine.

Run by ``perf/gpu_proof.sh`` (which installs the carried wheels first), from the
repository root, with the machine's own ``python3``::

    python3 -m perf.gpu_proof --out "$OUT" --bundle .gpubundle

Stages, each in its own process group with its own time limit, so that one that
crashes, hangs or fails does not stop the others (each records its checks,
numbers and reasons in ``gpu_proof.json``):

1. ``inventory``: nvidia-smi, torch/CUDA, ONNX Runtime providers, where
   ``libpython3.X.so`` is (the python backend stub needs it), package versions.
2. ``direct``: the CenterNet detector (``toolmesh_models.detector``) on ONNX
   Runtime's CUDA provider when it has one, else timed on the CPU at several
   thread counts; CLIP (``toolmesh_models.vision``) with random weights of the
   full ViT-B/32 size from a temporary model store, image-embedding throughput at
   batch 1 and 32 on ``cuda`` and on the CPU.
3. ``placement``: ``detect_gpus()`` and the rendered repository: KIND_GPU with
   ``gpus: [0]`` for every model placement.yaml puts on the GPU, KIND_CPU for the rest.
4. ``triton``: the tritonserver of the nvidia-pytriton wheel (unpacked from the
   carried bundle) with find, greyscale (and best_image_match on the CLIP store of
   stage 2) on KIND_GPU instances; calls over KServe gRPC, model config and
   statistics, find throughput at concurrency 1 and 8.
5. ``gateway``: (inside stage 4's process, while its Triton runs) the gateway
   against that Triton, ``find``/``greyscale`` through ``toolmesh.Client``, timed.

Without a GPU every stage still runs what it can (KIND_CPU placement, CPU
timings, Triton on the CPU) and says what it skipped and why.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import sysconfig
import tarfile
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIRS = ("sdk", "gateway", "triton_models", "codegen", "local")
"""Folders holding the project's packages; put on ``PYTHONPATH`` for every stage (and Triton)."""

TRITON_TARBALL = "triton.tar.xz"
LIBPYTHON_TARBALL = "libpython-fallback.tar.xz"
STUB_SITE_TARBALL = "stub-site.tar.xz"
"""NumPy 1.26 for the backend stub alone: the stub's pybind11 predates NumPy 2 (string
tensors come out garbled under NumPy 2), and the machine's NumPy is 2.x."""
STREET_FRAME = ROOT / "sdk" / "toolmesh" / "data" / "street" / "frame_000.jpg"
TRITON_MODELS = ("find", "greyscale", "best_image_match")

LOADER_DEFAULTS = frozenset(
    {
        "/lib",
        "/usr/lib",
        "/lib64",
        "/usr/lib64",
        "/lib/x86_64-linux-gnu",
        "/usr/lib/x86_64-linux-gnu",
    }
)
"""Folders the dynamic loader searches anyway: never added to ``LD_LIBRARY_PATH``."""

STAGE_LIMITS_S = {"inventory": 60.0, "direct": 150.0, "placement": 45.0, "triton": 240.0}
"""Each stage's own time limit; the whole run is also bounded by ``--budget``."""


# --------------------------------------------------------------------------- recording


@dataclass
class Record:
    """One stage's result: status, checks, data and the errors of its parts."""

    name: str
    status: str = "ok"
    reason: str = ""
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    path: Path | None = None
    """Where the record is saved after every check and part, so a stage killed at its
    time limit still leaves what it had found."""

    def save(self) -> None:
        if self.path is not None:
            self.path.write_text(json.dumps(self.as_dict(), indent=1, default=str))

    def check(self, name: str, ok: bool, detail: Any = None) -> bool:
        """Record a pass/fail check; a failed one makes the stage ``failed``."""
        self.checks[name] = {"ok": bool(ok), "detail": detail}
        print(f"  [{'PASS' if ok else 'FAIL'}] {self.name}.{name}: {_short(detail)}", flush=True)
        if not ok and self.status == "ok":
            self.status = "failed"
        self.save()
        return bool(ok)

    def skip(self, part: str, reason: str) -> None:
        """Record a part that could not run here, and why (not a failure)."""
        self.skipped[part] = reason
        print(f"  [SKIP] {self.name}.{part}: {reason}", flush=True)

    @contextlib.contextmanager
    def part(self, name: str) -> Iterator[None]:
        """Run a part of the stage; an exception is recorded and the stage goes on."""
        started = time.perf_counter()
        print(f"-- {self.name}.{name}", flush=True)
        try:
            yield
        except Exception as exc:
            self.errors[name] = "".join(traceback.format_exception(exc))[-4000:]
            self.status = "failed"
            print(f"  [ERROR] {self.name}.{name}: {type(exc).__name__}: {exc}", flush=True)
        finally:
            self.data.setdefault("part_seconds", {})[name] = round(time.perf_counter() - started, 2)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reason": self.reason,
            "seconds": round(self.seconds, 2),
            "checks": self.checks,
            "skipped": self.skipped,
            "errors": self.errors,
            "data": self.data,
        }


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _run(command: list[str], timeout: float = 30.0, env: dict[str, str] | None = None) -> str:
    """Run a command; return its output, or a line saying why there is none."""
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except FileNotFoundError:
        return f"(not found: {command[0]})"
    except subprocess.TimeoutExpired:
        return f"(timed out after {timeout:.0f}s)"
    text = done.stdout + (f"\n[stderr]\n{done.stderr}" if done.stderr.strip() else "")
    return text if done.returncode == 0 else f"(exit {done.returncode})\n{text}"


def _stats_ms(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    return {
        "n": len(ms),
        "mean_ms": round(statistics.fmean(ms), 3),
        "p50_ms": round(ms[len(ms) // 2], 3),
        "min_ms": round(ms[0], 3),
    }


def _timed(
    fn: Callable[[], Any], *, warmup: int, iters: int, sync: Callable[[], None] = lambda: None
) -> list[float]:
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(iters):
        started = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - started)
    return times


@dataclass(frozen=True)
class Context:
    """What every stage gets: where to write, where the bundle went, how hard to try."""

    out: Path
    work: Path
    quick: bool
    clip_size: str  # "auto", "full" or "tiny"


# --------------------------------------------------------------------------- libpython


def python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def find_libpython() -> dict[str, Any]:
    """Where this interpreter's shared ``libpython3.X.so.1.0`` is, if anywhere.

    The python backend stub links it (NEEDED ``libpython3.X.so.1.0``, no RPATH to
    it): found in a default loader directory it needs nothing; elsewhere (a
    standalone or pyenv build) its folder must go on ``LD_LIBRARY_PATH``.
    """
    version = python_version()
    soname = f"libpython{version}.so.1.0"
    config = {
        key: sysconfig.get_config_var(key)
        for key in ("LIBDIR", "INSTSONAME", "LDLIBRARY", "Py_ENABLE_SHARED", "MULTIARCH")
    }
    base_executable = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    folders = [
        config["LIBDIR"],
        str(Path(sys.base_prefix) / "lib"),
        str(base_executable.parent.parent / "lib"),
        f"/usr/lib/{config['MULTIARCH'] or 'x86_64-linux-gnu'}",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/local/lib",
        "/usr/lib",
        "/lib/x86_64-linux-gnu",
    ]
    found: list[str] = []
    for folder in dict.fromkeys(f for f in folders if f):
        candidate = Path(folder) / soname
        if candidate.exists():
            found.append(str(candidate))
    ldconfig = _run(["ldconfig", "-p"], timeout=10)
    registered = sorted(
        {m for m in re.findall(r"=>\s*(\S*libpython3[^\s]*)", ldconfig) if version in m}
    )
    return {
        "soname": soname,
        "sysconfig": config,
        "base_executable": str(base_executable),
        "found": found,
        "ldconfig": registered,
        "path": found[0] if found else (registered[0] if registered else None),
    }


# --------------------------------------------------------------------------- stage 1


def stage_inventory(rec: Record, ctx: Context) -> None:
    with rec.part("machine"):
        os_release = Path("/etc/os-release")
        pretty = ""
        if os_release.exists():
            match = re.search(r'^PRETTY_NAME="?([^"\n]*)', os_release.read_text(), re.M)
            pretty = match.group(1) if match else ""
        shm = shutil.disk_usage("/dev/shm") if Path("/dev/shm").exists() else None
        rec.data["machine"] = {
            "uname": platform.uname()._asdict(),
            "os": pretty,
            "libc": platform.libc_ver(),
            "cpus": os.cpu_count(),
            "dev_shm_free_mib": None if shm is None else shm.free // 2**20,
            "xz": shutil.which("xz"),
            "zstd": shutil.which("zstd"),
        }
    with rec.part("nvidia_smi"):
        rec.data["nvidia_smi"] = _run(["nvidia-smi"])
        rec.data["nvidia_smi_L"] = _run(["nvidia-smi", "-L"]).strip()
        print(rec.data["nvidia_smi"], flush=True)
    with rec.part("python"):
        rec.data["python"] = {
            "version": sys.version,
            "executable": sys.executable,
            "prefix": sys.prefix,
            "base_prefix": sys.base_prefix,
            "path": sys.path,
        }
        lib = find_libpython()
        rec.data["libpython"] = lib
        rec.check("libpython_found", lib["path"] is not None, lib["path"] or lib["sysconfig"])
    if importlib.util.find_spec("torch") is None:
        rec.skip("torch", "torch is not installed here")
    else:
        with rec.part("torch"):
            torch_inventory(rec)
    with rec.part("onnxruntime"):
        import onnxruntime as ort

        providers = ort.get_available_providers()
        rec.data["onnxruntime"] = {
            "version": ort.__version__,
            "providers": providers,
            "device": ort.get_device(),
            "file": ort.__file__,
        }
        rec.data["onnxruntime_has_cuda"] = "CUDAExecutionProvider" in providers
    with rec.part("packages"):
        from importlib import metadata

        names = ("grpcio", "protobuf", "numpy", "pillow", "onnxruntime", "torch", "transformers",
                 "tritonclient", "jsonschema", "attrs", "typing_extensions", "wrapt", "packaging",
                 "urllib3", "ml_dtypes", "prometheus_client", "pyyaml", "opentelemetry-api",
                 "opentelemetry-sdk", "grpcio-health-checking", "python-rapidjson")  # fmt: skip
        versions: dict[str, str | None] = {}
        for name in names:
            try:
                versions[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                versions[name] = None
        rec.data["packages"] = versions
        origins = {}
        for module in ("grpc", "google.protobuf", "numpy", "yaml", "PIL"):
            with contextlib.suppress(Exception):
                origins[module] = str(Path(__import__(module).__file__).parent)
        rec.data["module_origins"] = origins
    with rec.part("bundle_ldd"):
        root = ctx.work / "triton"
        stub = root / "pytriton/tritonserver/python_backend_stubs" / python_version()
        binary = root / "pytriton/tritonserver/bin/tritonserver"
        if not binary.exists():
            rec.skip("bundle_ldd", f"no unpacked bundle at {root}")
            return
        if not stub.exists():
            rec.skip("bundle_ldd", f"the bundle has no stub for Python {python_version()}")
            return
        env = triton_ld_env(root / "nvidia_pytriton.libs", rec.data.get("libpython", {}))
        for label, path in (
            ("tritonserver", binary),
            ("stub", stub / "triton_python_backend_stub"),
        ):
            text = _run(["ldd", str(path)], env=env)
            missing = [line.strip() for line in text.splitlines() if "not found" in line]
            rec.data[f"ldd_{label}"] = text
            rec.check(f"ldd_{label}_complete", not missing, missing or "all libraries resolve")


def torch_inventory(rec: Record) -> None:
    """torch's version and CUDA device, with a short bf16 matmul to show kernels run."""
    import torch

    info: dict[str, Any] = {
        "version": torch.__version__,
        "cuda_build": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        a = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)
        torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(10):
            a @ a
        torch.cuda.synchronize()
        seconds = (time.perf_counter() - started) / 10
        info |= {
            "device_count": torch.cuda.device_count(),
            "name": torch.cuda.get_device_name(0),
            "capability": list(torch.cuda.get_device_capability(0)),
            "memory_gib": round(props.total_memory / 2**30, 1),
            "bf16_matmul_4096_tflops": round(2 * 4096**3 / seconds / 1e12, 1),
        }
    rec.data["torch"] = info
    if re.search(r"^GPU \d+:", rec.data.get("nvidia_smi_L", ""), re.M):
        rec.check("torch_cuda", info["cuda_available"], info.get("name", "no CUDA device"))
    else:
        rec.skip(
            "torch_cuda",
            f"nvidia-smi lists no GPU; torch.cuda.is_available()={info['cuda_available']}",
        )


def triton_ld_env(lib_dir: Path, libpython: dict[str, Any]) -> dict[str, str]:
    """The environment with the wheel's libraries and (if needed) libpython's folder on the loader path."""
    parts = [str(lib_dir)]
    path = libpython.get("path")
    if path and str(Path(path).parent) not in LOADER_DEFAULTS:
        parts.append(str(Path(path).parent))
    current = os.environ.get("LD_LIBRARY_PATH")
    if current:
        parts.append(current)
    return dict(os.environ, LD_LIBRARY_PATH=os.pathsep.join(dict.fromkeys(parts)))


# --------------------------------------------------------------------------- stage 2


@dataclass
class FakeInstance:
    """The attributes ``vision.load_clip`` reads from a Triton model instance."""

    name: str
    instance_kind: str
    device_id: int
    parameters: dict[str, str]
    messages: list[str] = field(default_factory=list)

    def log(self, message: str) -> None:
        self.messages.append(message)
        print(f"  (model log) {self.name}: {message}", flush=True)


def stage_direct(rec: Record, ctx: Context) -> None:
    with rec.part("detector"):
        detector_timings(rec, ctx)
    if importlib.util.find_spec("torch") is None:
        rec.skip("torch_device_and_clip", "torch is not installed here")
        return
    cuda = False
    with rec.part("torch_device"):
        import torch

        from toolmesh_models.vision import torch_device

        cuda = torch.cuda.is_available()
        chosen = {
            "GPU/0": torch_device("GPU", 0),
            "GPU/7": torch_device("GPU", 7),
            "CPU/0": torch_device("CPU", 0),
        }
        rec.data["torch_device"] = chosen
        rec.check(
            "torch_device_selection",
            chosen == {"GPU/0": "cuda:0" if cuda else "cpu", "GPU/7": "cpu", "CPU/0": "cpu"},
            chosen,
        )
    with rec.part("clip"):
        clip_timings(rec, ctx, cuda)


def detector_timings(rec: Record, ctx: Context) -> None:
    import onnxruntime as ort

    from toolmesh_models.coco import resolve
    from toolmesh_models.detector import WEIGHTS_FILE, Detector
    from toolmesh_models.imaging import decode
    from toolmesh_models.paths import weights_dir

    frame = decode(STREET_FRAME.read_bytes())
    weights = weights_dir() / WEIGHTS_FILE
    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    rec.data["detector_ort_providers"] = ort.get_available_providers()
    gpu = Detector(weights, cuda_device=0)
    rec.data["detector_provider_with_cuda_device_0"] = gpu.provider
    people = gpu.detect(frame, classes=resolve("person"), threshold=0.3)
    rec.check("detector_finds_people", len(people.scores) >= 3, f"{len(people.scores)} people")
    iters = 10 if ctx.quick else 30
    timings: dict[str, Any] = {}
    if has_cuda:
        rec.check("detector_on_cuda", gpu.provider == "CUDAExecutionProvider", gpu.provider)
        times = _timed(lambda: gpu.detect(frame, threshold=0.3), warmup=5, iters=iters * 3)
        timings["CUDAExecutionProvider"] = _with_rate(_stats_ms(times))
    else:
        rec.skip(
            "detector_cuda",
            f"onnxruntime {ort.__version__} has no CUDAExecutionProvider "
            f"({ort.get_available_providers()}): Detector(cuda_device=0) runs on {gpu.provider}",
        )
    cpus = os.cpu_count() or 1
    for threads in sorted({1, min(4, cpus), cpus}):
        cpu = Detector(weights, intra_op_threads=threads)
        times = _timed(lambda d=cpu: d.detect(frame, threshold=0.3), warmup=2, iters=iters)
        timings[f"CPU threads={threads}"] = _with_rate(_stats_ms(times))
        print(f"  detector CPU threads={threads}: {timings[f'CPU threads={threads}']}", flush=True)
    rec.data["detector_timings"] = timings


def _with_rate(stats: dict[str, float], batch: int = 1) -> dict[str, float]:
    return stats | {"items_per_s": round(batch * 1000 / stats["mean_ms"], 1)}


def build_clip(folder: Path, size: str) -> dict[str, Any]:
    """Save a random-weight CLIP (``full``: ViT-B/32 dimensions; ``tiny``: a few layers) with
    its processor into ``folder``; the tokenizer's vocabulary is a toy one (numbers, not
    semantics)."""
    import torch
    import transformers as t

    torch.manual_seed(0)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {c: i for i, c in enumerate(letters)}
    vocab |= {c + "</w>": len(letters) + i for i, c in enumerate(letters)}
    for token in ("<|startoftext|>", "<|endoftext|>"):
        vocab[token] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = t.CLIPTokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"))
    end = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    special = {"bos_token_id": tokenizer.convert_tokens_to_ids("<|startoftext|>"),
               "eos_token_id": end, "pad_token_id": end}  # fmt: skip
    if size == "full":  # openai/clip-vit-base-patch32's dimensions
        text = {"hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12,
                "num_attention_heads": 8, "max_position_embeddings": 77}  # fmt: skip
        vision = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                  "num_attention_heads": 12, "image_size": 224, "patch_size": 32}  # fmt: skip
        projection, side = 512, 224
    else:
        text = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
                "num_attention_heads": 2, "max_position_embeddings": 16}  # fmt: skip
        vision = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
                  "num_attention_heads": 2, "image_size": 32, "patch_size": 8}  # fmt: skip
        projection, side = 16, 32
    config = t.CLIPConfig(
        text_config={"vocab_size": len(tokenizer), **text, **special},
        vision_config=vision,
        projection_dim=projection,
    )
    model = t.CLIPModel(config)
    model.save_pretrained(folder)
    image_processor = t.CLIPImageProcessor(
        size={"shortest_edge": side}, crop_size={"height": side, "width": side}
    )
    t.CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return {
        "size": size,
        "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
        "image_side": side,
    }


def clip_timings(rec: Record, ctx: Context, cuda: bool) -> None:
    import tempfile

    import numpy as np
    import torch

    from toolmesh_models.store import ModelStore
    from toolmesh_models.vision import load_clip

    size = ctx.clip_size if ctx.clip_size != "auto" else ("full" if cuda else "tiny")
    store_root = ctx.work / "store"
    shutil.rmtree(store_root, ignore_errors=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="clip-", dir=ctx.work) as tmp:
        built = build_clip(Path(tmp), size)
        ModelStore(store_root).add("clip", tmp, revision=f"random-{size}")
    built["build_and_store_s"] = round(time.perf_counter() - started, 1)
    rec.data["clip_model"] = built
    os.environ["TOOLMESH_MODEL_DIR"] = str(store_root)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for _ in range(32)]
    cpus = os.cpu_count() or 1
    results: dict[str, Any] = {}
    devices = [("GPU", 0)] if cuda else []
    devices.append(("CPU", 0))
    if not cuda:
        rec.skip("clip_cuda", "torch.cuda.is_available() is False: CPU only")
    for kind, device_id in devices:
        instance = FakeInstance(
            "best_image_match", kind, device_id, {"intra_op_threads": str(cpus)}
        )
        clip = load_clip(instance)
        expected = "cuda:0" if kind == "GPU" else "cpu"
        rec.check(f"clip_loaded_on_{expected}", clip.device == expected, clip.device)
        on_gpu = clip.device.startswith("cuda")
        sync = torch.cuda.synchronize if on_gpu else (lambda: None)
        for batch in (1, 32):
            subset = images[:batch]
            if on_gpu:
                iters = (20 if batch == 1 else 8) if ctx.quick else (50 if batch == 1 else 20)
            else:
                iters = (3 if batch == 1 else 1) if ctx.quick else (10 if batch == 1 else 3)
            pixels = clip.processor(images=[_pil(i) for i in subset], return_tensors="pt")[
                "pixel_values"
            ].to(clip.device)

            def embed(pixels: torch.Tensor = pixels, clip: Any = clip) -> None:
                with torch.inference_mode():
                    clip.model.get_image_features(pixel_values=pixels)

            def end_to_end(subset: list[np.ndarray] = subset, clip: Any = clip) -> None:
                clip.logits(subset, ["a photo of a car"])

            model_only = _stats_ms(_timed(embed, warmup=2, iters=iters, sync=sync))
            whole = _stats_ms(_timed(end_to_end, warmup=1, iters=max(1, iters // 2), sync=sync))
            key = f"{clip.device} batch={batch}"
            results[key] = {
                "image_features": _with_rate(model_only, batch),
                "logits_with_preprocessing": _with_rate(whole, batch),
            }
            print(f"  CLIP {key}: {results[key]}", flush=True)
        del clip
        if on_gpu:
            torch.cuda.empty_cache()
    rec.data["clip_timings"] = results
    rec.data["clip_store"] = str(store_root)


def _pil(image: Any) -> Any:
    from PIL import Image

    return Image.fromarray(image)


# --------------------------------------------------------------------------- stage 3


def stage_placement(rec: Record, ctx: Context) -> None:
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    from toolmesh_models.placement import detect_gpus, load_placement
    from toolmesh_models.repository import read_config, render_repository

    smi = _run(["nvidia-smi", "-L"])
    listed = len(re.findall(r"^GPU \d+:", smi, re.M))
    gpus = detect_gpus()
    rec.data |= {"nvidia_smi_L": smi.strip(), "detect_gpus": gpus}
    rec.check("detect_gpus_matches_nvidia_smi", gpus == list(range(listed)), gpus)
    if not gpus:
        rec.skip("kind_gpu", "no GPU detected: every model must render KIND_CPU")
    placement = load_placement()
    dest = ctx.work / "repository-all"
    names = render_repository(dest, placement=placement, gpus=gpus)
    kind_name = model_config_pb2.ModelInstanceGroup.Kind.Name
    groups: dict[str, list[dict[str, Any]]] = {}
    wrong: dict[str, Any] = {}
    for name in names:
        config = read_config(dest / name / "config.pbtxt")
        found = [
            {"kind": kind_name(g.kind), "count": g.count, "gpus": list(g.gpus)}
            for g in config.instance_group
        ]
        groups[name] = found
        settings = placement.for_model(name)
        if settings.kind == "gpu" and gpus:
            wanted = settings.gpus if settings.gpus is not None else tuple(gpus)
            expected = [{"kind": "KIND_GPU", "count": settings.count, "gpus": [i]} for i in wanted]
        else:
            expected = [
                {"kind": "KIND_CPU", "count": settings.cpu_count or settings.count, "gpus": []}
            ]
        if found != expected:
            wrong[name] = {"rendered": found, "expected": expected}
    rec.data["instance_groups"] = groups
    on_gpu = sorted(n for n, g in groups.items() if g and g[0]["kind"] == "KIND_GPU")
    rec.data["models_on_gpu"] = on_gpu
    rec.check("instance_groups_follow_placement", not wrong, wrong or f"{len(names)} models")
    if gpus:
        rec.check(
            "find_is_kind_gpu_on_gpu_0",
            groups.get("find") == [{"kind": "KIND_GPU", "count": 2, "gpus": [0]}],
            groups.get("find"),
        )
    find = read_config(dest / "find" / "config.pbtxt")
    rec.data["find_instance_group_text"] = "".join(
        f"instance_group {{\n{text_format.MessageToString(g)}}}\n" for g in find.instance_group
    )
    rec.data["find_config_pbtxt"] = (dest / "find" / "config.pbtxt").read_text()
    print(rec.data["find_instance_group_text"], flush=True)


# --------------------------------------------------------------------------- stages 4 and 5


@dataclass
class LoadResult:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    per_s: float
    p50_ms: float
    p99_ms: float
    first_error: str = ""


async def closed_loop_for(
    call: Callable[[], Awaitable[Any]], *, concurrency: int, seconds: float
) -> LoadResult:
    """``concurrency`` workers call back to back until ``seconds`` have passed."""
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                await call()
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    ms = sorted(x * 1000 for x in latencies) or [float("nan")]
    return LoadResult(
        concurrency=concurrency,
        requests=len(latencies),
        errors=len(errors),
        seconds=round(elapsed, 2),
        per_s=round(len(latencies) / elapsed, 1),
        p50_ms=round(ms[len(ms) // 2], 2),
        p99_ms=round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2),
        first_error=errors[0][:300] if errors else "",
    )


def locate_triton(ctx: Context) -> Any:
    """The unpacked bundle's tritonserver, else the nvidia-pytriton wheel of this environment."""
    from toolmesh_local.triton import TritonInstall

    root = ctx.work / "triton"
    tritonserver = root / "pytriton" / "tritonserver"
    if (tritonserver / "bin" / "tritonserver").exists():
        install = TritonInstall(
            binary=tritonserver / "bin" / "tritonserver",
            python_backend=tritonserver / "backends" / "python",
            stub=tritonserver / "python_backend_stubs" / python_version()
            / "triton_python_backend_stub",
            lib_dir=root / "nvidia_pytriton.libs",
        )  # fmt: skip
        if not install.stub.exists():
            raise FileNotFoundError(f"the bundle has no python backend stub for {python_version()}")
        return install
    return TritonInstall.find()


def stage_triton(rec: Record, ctx: Context) -> Record:
    """Stage 4 (recorded in ``rec``); returns stage 5's record (the gateway)."""
    gateway = Record("gateway", path=ctx.work / "gateway.json")
    try:
        _triton_and_gateway(rec, gateway, ctx)
    finally:
        gateway.seconds = float(sum(gateway.data.get("part_seconds", {}).values()))
    return gateway


def _triton_and_gateway(rec: Record, gateway: Record, ctx: Context) -> None:
    try:
        install = locate_triton(ctx)
    except Exception as exc:
        rec.status, rec.reason = "skipped", f"no tritonserver: {exc}"
        gateway.status, gateway.reason = "skipped", "stage 4 (Triton) did not run"
        return
    rec.data["install"] = {k: str(getattr(install, k)) for k in ("binary", "stub", "lib_dir")}
    libpython = find_libpython()
    rec.data["libpython"] = libpython
    fallback = ctx.work / "libpython-fallback"
    if libpython["path"] is None and (fallback / libpython["soname"]).exists():
        libpython["path"] = str(fallback / libpython["soname"])
        rec.data["libpython_fallback_used"] = True
        print(f"  no {libpython['soname']} on this machine: using the carried one", flush=True)
    env = triton_ld_env(install.lib_dir, libpython)
    ldd = _run(["ldd", str(install.stub)], env=env)
    missing = [line.strip() for line in ldd.splitlines() if "not found" in line]
    rec.data["ldd_stub"] = ldd
    if missing:
        rec.status = "skipped"
        rec.reason = f"the python backend stub cannot load: {missing} (see data.libpython)"
        gateway.status, gateway.reason = "skipped", "stage 4 (Triton) did not run"
        print(f"  [SKIP] {rec.reason}", flush=True)
        return
    server = None
    try:
        with rec.part("start"):
            server = start_triton(rec, ctx, install, env)
        if server is None or server.process is None:
            rec.status = "failed"
            gateway.status, gateway.reason = "skipped", "Triton did not start"
            return
        ready = {m["name"] for m in rec.data.get("model_states", []) if m.get("state") == "READY"}
        if not {"find", "greyscale"} <= ready:
            rec.status = "failed"
            gateway.status, gateway.reason = "skipped", "find/greyscale did not load in Triton"
            return
        with rec.part("grpc_calls"):
            triton_calls(rec, server.grpc_url)
        with rec.part("instance_placement_in_log"):
            instance_log_checks(rec, ctx.out / "triton.log")
        with rec.part("throughput"):
            rec.data["find_load"] = asyncio.run(triton_load(server.grpc_url, ctx))
            for result in rec.data["find_load"]:
                print(f"  find via Triton: {result}", flush=True)
                rec.check(f"find_load_c{result['concurrency']}_no_errors", result["errors"] == 0,
                          result)  # fmt: skip
        with rec.part("gpu_processes"):
            rec.data["nvidia_smi_apps"] = _run(
                ["nvidia-smi", "--query-compute-apps=pid,process_name,used_memory",
                 "--format=csv"]
            )  # fmt: skip
        with rec.part("statistics"):
            rec.data["statistics"] = triton_statistics(server.grpc_url)
        run_gateway(gateway, ctx, server.grpc_url)
    finally:
        if server is not None:
            server.stop()
        rec.data["triton_log_highlights"] = log_highlights(ctx.out / "triton.log")


def stub_environment(folder: Path, stub_site: Path) -> tuple[Path, str]:
    """A venv whose ``python3`` the backend stub finds on ``PATH``; returns its ``bin`` and .pth.

    The stub embeds libpython in isolated mode: it ignores ``PYTHONPATH`` and takes
    its ``sys.path`` from the first ``python3`` on ``PATH`` (its ``pyvenv.cfg``), with
    ``site`` on. So this venv's ``.pth`` file puts there what ``PYTHONPATH`` gives
    the stages (the carried wheels first, then the project's source folders) and
    then this interpreter's own site-packages (torch, onnxruntime, ...), with their
    ``.pth`` files, via ``site.addsitedir``. ``stub_site`` (the carried NumPy 1.26,
    when there) goes before everything. Nothing of the machine's environment is
    modified.
    """
    import site
    import venv

    shutil.rmtree(folder, ignore_errors=True)
    try:
        venv.EnvBuilder(with_pip=False, symlinks=True).create(folder)
    except Exception as exc:  # a stripped stdlib: lay out what getpath reads by hand
        print(f"  venv failed ({type(exc).__name__}: {exc}); making it by hand", flush=True)
        shutil.rmtree(folder, ignore_errors=True)
        base = Path(getattr(sys, "_base_executable", sys.executable))
        (folder / "bin").mkdir(parents=True)
        (folder / "lib" / f"python{python_version()}" / "site-packages").mkdir(parents=True)
        (folder / "bin" / "python3").symlink_to(base)
        (folder / "pyvenv.cfg").write_text(
            f"home = {base.parent}\ninclude-system-site-packages = false\n"
            f"version = {platform.python_version()}\n"
        )
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    own = [*site.getsitepackages(), sysconfig.get_paths()["purelib"]]
    lines = [str(stub_site)] if stub_site.is_dir() else []
    if stub_site.is_dir():
        # The machine's SciPy is built for NumPy 2 and breaks under the stub's NumPy 1.26;
        # transformers imports it only when it looks installed (CLIP needs none of it).
        # A None entry in sys.modules makes find_spec say "absent" and imports fail cleanly.
        # GPU_PROOF_STUB_BLOCK names more such packages (perf/gpu_stub_probe.py finds them).
        blocked = os.environ.get("GPU_PROOF_STUB_BLOCK", "scipy,sklearn").split(",")
        lines += [
            f"import sys; sys.modules.setdefault({name.strip()!r}, None)"
            for name in blocked
            if name.strip()
        ]
    lines += [str(Path(p).resolve()) for p in paths]
    lines += [f"import site; site.addsitedir({p!r})" for p in dict.fromkeys(own)]
    pth = "\n".join(lines) + "\n"
    purelib = subprocess.run(
        [
            str(folder / "bin" / "python3"),
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(purelib) / "toolmesh_gpu_proof.pth").write_text(pth)
    return folder / "bin", pth


def start_triton(rec: Record, ctx: Context, install: Any, env: dict[str, str]) -> Any:
    from toolmesh_local.triton import TritonServer, TritonStartError, prepare_backends
    from toolmesh_models.placement import detect_gpus, load_placement
    from toolmesh_models.repository import render_repository
    from toolmesh_models.store import ModelStore

    gpus = detect_gpus()
    store = ctx.work / "store"
    models = list(TRITON_MODELS)
    if not ModelStore(store).has("clip"):
        models.remove("best_image_match")
        rec.skip("best_image_match", "no CLIP in the stage-2 store (stage 2 failed or skipped)")
    repository = ctx.work / "repository"
    render_repository(repository, placement=load_placement(), gpus=gpus, models=models)
    rec.data |= {"gpus": gpus, "models": models}
    workdir = ctx.work / "triton-run"
    workdir.mkdir(parents=True, exist_ok=True)
    server = TritonServer(repository, workdir)
    server.log_path = ctx.out / "triton.log"  # comes back with the results
    backends = prepare_backends(install, workdir / "backends")
    environment = server.environment(install)
    environment["LD_LIBRARY_PATH"] = env["LD_LIBRARY_PATH"]
    environment["TOOLMESH_MODEL_DIR"] = str(store)
    stub_bin, pth = stub_environment(ctx.work / "stubenv", ctx.work / "stub-site")
    environment["PATH"] = os.pathsep.join([str(stub_bin), environment["PATH"]])
    command = server.command(install, backends)
    rec.data["command"] = command
    rec.data["stub_env"] = {k: environment.get(k, "") for k in ("PATH", "LD_LIBRARY_PATH")}
    rec.data["stub_pth"] = pth
    # The python backend sometimes aborts at start-up (boost::interprocess::lock_exception,
    # triton-inference-server/server#8882): a server that exits early gets one more try.
    for attempt in (1, 2):
        started = time.perf_counter()
        with open(server.log_path, "wb") as log:
            server.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=environment
            )
        try:
            server.wait_ready(150.0)
            break
        except TritonStartError as exc:
            exited = server.process is not None and server.process.poll() is not None
            server.stop()
            rec.data[f"start_attempt_{attempt}_error"] = str(exc)[-2000:]
            if attempt == 2 or not exited:
                rec.check("triton_ready", False, str(exc)[-2000:])
                return None
            print(f"  tritonserver exited during start-up; trying once more:\n{exc}", flush=True)
            server.log_path.replace(ctx.out / "triton-attempt1.log")
    rec.data["start_attempts"] = attempt
    rec.data["ready_s"] = round(time.perf_counter() - started, 1)
    rec.check("triton_ready", True, f"ready after {rec.data['ready_s']}s")
    states = server.model_states()
    rec.data["model_states"] = states
    ready = {m["name"] for m in states if m.get("state") == "READY"}
    rec.check("models_ready", set(models) <= ready, states)
    return server


def triton_calls(rec: Record, url: str) -> None:
    import numpy as np
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url)
    gpus = rec.data.get("gpus") or []
    configs = {}
    for name in rec.data.get("models", []):
        with contextlib.suppress(Exception):
            config = client.get_model_config(name, as_json=True)["config"]
            configs[name] = config.get("instance_group")
    rec.data["served_instance_groups"] = configs
    find_groups = configs.get("find") or []
    if gpus:
        rec.check(
            "find_served_kind_gpu",
            bool(find_groups) and all(g.get("kind") == "KIND_GPU" for g in find_groups),
            find_groups,
        )
    else:
        rec.skip("find_served_kind_gpu", f"no GPU: find is served as {find_groups}")
    jpeg = STREET_FRAME.read_bytes()
    encoded = np.frombuffer(jpeg, dtype=np.uint8)
    found = client.infer("find", find_inputs(grpcclient, encoded))
    labels = [x.decode() for x in found.as_numpy("label").reshape(-1)]
    boxes = found.as_numpy("box")
    rec.data["find_result"] = {"labels": labels, "boxes_shape": list(boxes.shape)}
    rec.check("find_people_via_triton", len(labels) >= 3 and set(labels) == {"person"}, labels)
    grey_input = grpcclient.InferInput("image", [len(encoded)], "UINT8")
    grey_input.set_data_from_numpy(encoded)
    grey = client.infer("greyscale", [grey_input]).as_numpy("result")
    rec.check("greyscale_via_triton", list(grey.shape) == [576, 768, 1], list(grey.shape))
    if "best_image_match" in rec.data.get("models", []):
        images = grpcclient.InferInput("images", [1, 3], "BYTES")
        images.set_data_from_numpy(np.array([[jpeg, jpeg, jpeg]], dtype=np.object_))
        text = grpcclient.InferInput("text", [1, 1], "BYTES")
        text.set_data_from_numpy(np.array([[b"a street"]], dtype=np.object_))
        started = time.perf_counter()
        match = client.infer("best_image_match", [images, text])
        scores = match.as_numpy("scores")
        rec.data["best_image_match_ms"] = round((time.perf_counter() - started) * 1000, 1)
        rec.check("best_image_match_via_triton", list(scores.shape) == [1, 3], scores.tolist())
        groups = configs.get("best_image_match") or []
        if gpus:
            rec.check(
                "best_image_match_served_kind_gpu",
                bool(groups) and all(g.get("kind") == "KIND_GPU" for g in groups),
                groups,
            )
    client.close()


def instance_log_checks(rec: Record, log_path: Path) -> None:
    """On a GPU machine: Triton put find's instances on GPU 0, and the model code saw it."""
    text = log_path.read_text(errors="replace")
    gpu_instances = re.findall(r"ModelInstanceInitialize: find_\d+_\d+ \(GPU device (\d+)\)", text)
    rec.data["find_gpu_instances_in_log"] = gpu_instances
    if not rec.data.get("gpus"):
        rec.skip("find_instances_on_gpu_0", "no GPU: instances are CPU ones")
        return
    rec.check("find_instances_on_gpu_0", gpu_instances == ["0", "0"], gpu_instances)
    rec.check(
        "find_model_sees_gpu_instance",
        "find: instance ready (GPU 0)" in text,
        re.findall(r"find: (?:instance ready|backend|GPU instance)[^\n\"]*", text)[:4],
    )
    if "best_image_match" in rec.data.get("models", []):
        clip = re.findall(r"best_image_match: CLIP from [^\n\"]*", text)
        rec.check("clip_in_triton_on_cuda_0", any(c.endswith("on cuda:0") for c in clip), clip)


def find_inputs(grpcclient: Any, encoded: Any) -> list[Any]:
    import numpy as np

    image = grpcclient.InferInput("image", [1, len(encoded)], "UINT8")
    image.set_data_from_numpy(encoded[np.newaxis])
    name = grpcclient.InferInput("object_name", [1, 1], "BYTES")
    name.set_data_from_numpy(np.array([[b"person"]], dtype=np.object_))
    threshold = grpcclient.InferInput("threshold", [1, 1], "FP32")
    threshold.set_data_from_numpy(np.array([[0.3]], dtype=np.float32))
    return [image, name, threshold]


async def triton_load(url: str, ctx: Context) -> list[dict[str, Any]]:
    from dataclasses import asdict

    import numpy as np
    import tritonclient.grpc as grpcclient
    import tritonclient.grpc.aio as aioclient

    encoded = np.frombuffer(STREET_FRAME.read_bytes(), dtype=np.uint8)
    inputs = find_inputs(grpcclient, encoded)
    client = aioclient.InferenceServerClient(url)
    try:
        results = []
        for concurrency in (1, 8):
            result = await closed_loop_for(
                lambda: client.infer("find", inputs),
                concurrency=concurrency,
                seconds=3.0 if ctx.quick else 8.0,
            )
            results.append(asdict(result))
        return results
    finally:
        await client.close()


def triton_statistics(url: str) -> dict[str, Any]:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url)
    out = {}
    for entry in client.get_inference_statistics(as_json=True).get("model_stats", []):
        stats = entry.get("inference_stats", {})
        count = int(stats.get("success", {}).get("count", 0) or 0)
        compute = int(stats.get("compute_infer", {}).get("ns", 0) or 0)
        out[entry["name"]] = {
            "inference_count": entry.get("inference_count"),
            "execution_count": entry.get("execution_count"),
            "success_count": count,
            "compute_infer_ms_per_request": round(compute / count / 1e6, 2) if count else None,
        }
    client.close()
    return out


def log_highlights(path: Path) -> list[str]:
    """Triton log lines that say where instances run and which backend they loaded."""
    if not path.exists():
        return []
    keep = re.compile(
        r"ModelInstanceInitialize|instance ready|backend CenterNet|GPU instance|CLIP from|"
        r"error|Error|failed|Started GRPCInferenceService|successfully loaded|CUDA|cuda"
    )
    lines = [line for line in path.read_text(errors="replace").splitlines() if keep.search(line)]
    return lines[:80]


def run_gateway(rec: Record, ctx: Context, triton_url: str) -> None:
    from toolmesh_local.triton import free_port, stop_process

    started = time.perf_counter()
    address = f"127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "toolmesh_gateway", f"--address={address}",
               f"--triton-url={triton_url}", f"--metrics-address=127.0.0.1:{free_port()}"]  # fmt: skip
    log_path = ctx.out / "gateway.log"
    process = None
    try:
        with rec.part("start"):
            from toolmesh_local.mesh import wait_for_health

            with open(log_path, "wb") as log:
                process = subprocess.Popen(
                    command, stdout=log, stderr=subprocess.STDOUT,
                    env=dict(os.environ, PYTHONUNBUFFERED="1"),
                )  # fmt: skip
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None:
                    tail = log_path.read_text(errors="replace").splitlines()[-25:]
                    raise RuntimeError(f"gateway exited {process.returncode}:\n" + "\n".join(tail))
                try:
                    wait_for_health(address, timeout=2.0)
                    break
                except TimeoutError:
                    if time.monotonic() > deadline:
                        raise
            rec.data["serving_after_s"] = round(time.perf_counter() - started, 1)
            rec.check("gateway_serving", True, f"{address} after {rec.data['serving_after_s']}s")
        if "start" in rec.errors:
            return
        with rec.part("sdk"):
            asyncio.run(sdk_calls(rec, ctx, address))
    finally:
        stop_process(process, timeout=10)


async def sdk_calls(rec: Record, ctx: Context, address: str) -> None:
    from dataclasses import asdict

    import toolmesh

    jpeg = STREET_FRAME.read_bytes()
    async with toolmesh.Client(address, timeout=60) as client:
        functions = await client.functions()
        rec.data["functions"] = {
            f.name: ("available" if f.available else f"unavailable: {f.unavailable_reason}"[:200])
            for f in functions
        }
        people = await client.call("find", image=jpeg, object_name="person")
        rec.check(
            "find_people_via_sdk",
            len(people) >= 3 and all(p["label"] == "person" for p in people),
            f"{len(people)} people",
        )
        grey = await client.call("greyscale", image=jpeg)
        rec.check("greyscale_via_sdk", tuple(grey.size) == (768, 576), list(grey.size))
        results = []
        for concurrency in (1, 8):
            result = await closed_loop_for(
                lambda: client.call("find", image=jpeg, object_name="person"),
                concurrency=concurrency,
                seconds=3.0 if ctx.quick else 6.0,
            )
            results.append(asdict(result))
            print(f"  find via gateway+SDK: {asdict(result)}", flush=True)
            rec.check(f"sdk_find_load_c{concurrency}_no_errors", result.errors == 0,
                      asdict(result))  # fmt: skip
        rec.data["find_load"] = results


# --------------------------------------------------------------------------- driver

STAGES: dict[str, Callable[[Record, Context], Any]] = {
    "inventory": stage_inventory,
    "direct": stage_direct,
    "placement": stage_placement,
    "triton": stage_triton,
}


def run_stage(name: str, ctx: Context) -> None:
    """Child process: run one stage, write ``<work>/<name>.json`` (and ``gateway.json``)."""
    rec = Record(name, path=ctx.work / f"{name}.json")
    started = time.perf_counter()
    extra: Record | None = None
    try:
        returned = STAGES[name](rec, ctx)
        extra = returned if isinstance(returned, Record) else None
    except Exception as exc:
        rec.status = "failed"
        rec.errors["stage"] = "".join(traceback.format_exception(exc))[-4000:]
        print(f"  [ERROR] {name}: {type(exc).__name__}: {exc}", flush=True)
    rec.seconds = time.perf_counter() - started
    rec.save()
    if extra is not None:
        extra.save()


def unpack_bundle(bundle: Path, work: Path) -> dict[str, Any]:
    """Unpack the carried tarballs (xz, through Python's own lzma: no xz binary needed)."""
    result: dict[str, Any] = {"status": "ok", "reason": "", "data": {}}
    started = time.perf_counter()
    tarballs = (
        (TRITON_TARBALL, "triton"),
        (LIBPYTHON_TARBALL, "libpython-fallback"),
        (STUB_SITE_TARBALL, "stub-site"),
    )
    for tarball, target in tarballs:
        path = bundle / tarball
        if not path.exists():
            result["data"][tarball] = "absent"
            continue
        destination = work / target
        shutil.rmtree(destination, ignore_errors=True)
        destination.mkdir(parents=True)
        with tarfile.open(path, "r:xz") as archive:
            archive.extractall(destination, filter="tar")
        result["data"][tarball] = f"{path.stat().st_size / 2**20:.1f} MiB -> {destination}"
    if not (bundle / TRITON_TARBALL).exists():
        result["status"], result["reason"] = "skipped", f"no {bundle / TRITON_TARBALL}"
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result


def child_env() -> dict[str, str]:
    paths = [str(ROOT / d) for d in SOURCE_DIRS] + [str(ROOT)]
    current = os.environ.get("PYTHONPATH")
    return dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([*([current] if current else []), *paths]),
        PYTHONUNBUFFERED="1",
        HF_HUB_OFFLINE="1",
    )


def run_child(name: str, args: argparse.Namespace, limit: float) -> dict[str, Any]:
    """Run a stage in its own process group; kill the group if it outlives ``limit``."""
    command = [sys.executable, "-m", "perf.gpu_proof", "--stage", name, "--out", str(args.out),
               "--work", str(args.work), "--clip", args.clip, *(["--quick"] if args.quick else [])]  # fmt: skip
    started = time.perf_counter()
    for stale in (args.work / f"{name}.json", args.work / "gateway.json"):
        stale.unlink(missing_ok=True)
    print(f"\n===== stage {name} (limit {limit:.0f}s) =====", flush=True)
    process = subprocess.Popen(command, cwd=ROOT, env=child_env(), start_new_session=True)
    try:
        code = process.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        code = None
    path = args.work / f"{name}.json"
    if path.exists():
        result: dict[str, Any] = json.loads(path.read_text())
    else:
        result = {"status": "error", "checks": {}, "data": {}}
    if code is None:
        result["status"] = "error"
        result["reason"] = f"timed out after {limit:.0f}s: process group killed"
    elif code != 0 and not path.exists():
        result["reason"] = f"the stage process died with exit code {code}"
    result["wall_s"] = round(time.perf_counter() - started, 1)
    # A stage process that died could not clean up after itself: reap its Triton/gateway.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    return result


def summary_line(name: str, result: dict[str, Any]) -> str:
    checks = result.get("checks", {})
    passed = sum(1 for c in checks.values() if c["ok"])
    failed = [k for k, c in checks.items() if not c["ok"]]
    text = f"{name:<10} {result.get('status', '?'):<8} {passed}/{len(checks)} checks"
    if failed:
        text += f"; failed: {', '.join(failed)}"
    if result.get("errors"):
        text += f"; errors in: {', '.join(result['errors'])}"
    if result.get("reason"):
        text += f"; {result['reason']}"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m perf.gpu_proof", description=__doc__)
    parser.add_argument(
        "--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/gpu_proof_out"))
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/gpu_proof"))
    parser.add_argument("--bundle", type=Path, default=ROOT / ".gpubundle")
    parser.add_argument("--budget", type=float, default=420.0, help="seconds for all stages")
    parser.add_argument("--stages", default="inventory,direct,placement,triton")
    parser.add_argument("--clip", choices=["auto", "full", "tiny"], default="auto")
    parser.add_argument("--quick", action="store_true", help="fewer timing iterations")
    parser.add_argument("--stage", choices=sorted(STAGES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.out, args.work = args.out.resolve(), args.work.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    ctx = Context(out=args.out, work=args.work, quick=args.quick, clip_size=args.clip)
    if args.stage:
        run_stage(args.stage, ctx)
        return 0

    deadline = time.monotonic() + args.budget
    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
        "python": sys.executable,
        "argv": sys.argv,
        "stages": {},
    }
    output = args.out / "gpu_proof.json"

    def save() -> None:
        output.write_text(json.dumps(report, indent=1, default=str))

    print("===== bundle =====", flush=True)
    try:
        report["stages"]["bundle"] = unpack_bundle(args.bundle.resolve(), args.work)
    except Exception as exc:
        report["stages"]["bundle"] = {"status": "error", "reason": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(report["stages"]["bundle"]), flush=True)
    save()
    for name in [s for s in args.stages.split(",") if s]:
        left = deadline - time.monotonic()
        if left < 10:
            report["stages"][name] = {"status": "skipped", "reason": "out of --budget time"}
            continue
        report["stages"][name] = run_child(name, args, min(STAGE_LIMITS_S[name], left))
        if name == "triton":
            gateway = args.work / "gateway.json"
            report["stages"]["gateway"] = (
                json.loads(gateway.read_text())
                if gateway.exists()
                else {"status": "error", "reason": "stage 4 ended without a gateway result"}
            )
            if "timed out" in report["stages"]["triton"].get("reason", "") and gateway.exists():
                report["stages"]["gateway"]["status"] = "error"
                report["stages"]["gateway"]["reason"] = "killed with stage 4: may be incomplete"
        save()
    report["summary"] = [summary_line(n, r) for n, r in report["stages"].items()]
    save()
    print("\n===== summary =====", flush=True)
    print("\n".join(report["summary"]), flush=True)
    print(f"results: {output}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
