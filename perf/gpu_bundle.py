"""Build what ``perf/gpu_proof.sh`` needs on a GPU machine that has no network.

Writes two ignored folders of the repository (listed in ``.git/info/exclude``),
which the device call names in ``carry``:

- ``.gpubundle/triton.tar.xz``: tritonserver, the python backend, the Python 3.12
  backend stub and the libraries they load (their ``NEEDED`` closure inside
  ``nvidia_pytriton.libs``, found with ``readelf``), laid out as in the
  nvidia-pytriton wheel so the binaries' ``RPATH`` still resolves;
- ``.gpubundle/libpython-fallback.tar.xz``: a shared ``libpython3.12.so.1.0``
  (debug symbols stripped), used only where the machine has none;
- ``.gpubundle/stub-site.tar.xz``: NumPy 1.26 (unpacked wheel, tests left out) that
  the proof puts first on the backend stub's ``sys.path`` only: the stub's pybind11
  predates NumPy 2 (string tensors arrive garbled, the stub aborts) and the machine
  has NumPy 2.x; the stages themselves keep the machine's NumPy;
- ``.whl/``: cp312 manylinux / pure wheels of what the gateway, the SDK and
  ``toolmesh_models`` import and the machine lacks (see :data:`WHEELS`).

Then it checks the result the way the device will use it: unpacks the tarball
with Python's ``tarfile`` (no ``xz`` binary needed there), runs
``tritonserver --help`` and ``ldd`` from the unpacked copy, installs the wheels
with ``pip --no-index --no-deps --target`` under a Python 3.12 when there is one,
and adds up what will travel against the 64 MiB limit.

    .venv/bin/python -m perf.gpu_bundle            # or: bash perf/gpu_bundle.sh
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STUB_VERSION = "3.12"
LIMIT_BYTES = 64 * 2**20

WHEELS = (
    # toolmesh_models.placement/repository and the gateway: tritonclient[grpc]
    "tritonclient==2.73.0",
    "python-rapidjson==1.25",
    # generated stubs in sdk/toolmesh/v1: protobuf gencode 6.33.5, grpc 1.81.1
    "protobuf==6.33.6",
    "grpcio==1.85.3",
    "grpcio-health-checking==1.81.1",
    "grpcio-reflection==1.81.1",
    # the gateway's schema validation
    "jsonschema==4.26.0",
    "jsonschema-specifications==2025.9.1",
    "referencing==0.37.0",
    "rpds-py==2026.9.1",
    "fastjsonschema==2.22.3",
    # tracing (imported by the gateway and the SDK; no exporter is configured)
    "opentelemetry-api==1.45.2",
    "opentelemetry-sdk==1.45.2",
    "opentelemetry-semantic-conventions==0.66b2",
    "opentelemetry-instrumentation==0.66b2",
    "opentelemetry-instrumentation-grpc==0.66b2",
)
"""Wheels to carry. The machine already has numpy, pillow, pyyaml, packaging, attrs,
typing-extensions, wrapt, urllib3, ml-dtypes, prometheus-client, typer and rich
(KINDS.md's list); protobuf and grpcio are carried anyway, pinned to what the
generated stubs were made with, because the machine's versions are unknown."""

STUB_NUMPY = "numpy==1.26.4"
"""The last NumPy 1.x (the first with CPython 3.12 wheels)."""

PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64",
             "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64")  # fmt: skip


def needed(path: Path) -> list[str]:
    """The ``NEEDED`` entries of an ELF file's dynamic section."""
    out = subprocess.run(
        ["readelf", "-d", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", out)


def library_closure(roots: list[Path], lib_dir: Path) -> tuple[list[str], list[str]]:
    """Libraries of ``lib_dir`` the ``roots`` load, transitively; and those found elsewhere."""
    inside: set[str] = set()
    outside: set[str] = set()
    todo = list(roots)
    while todo:
        for name in needed(todo.pop()):
            if (lib_dir / name).exists():
                if name not in inside:
                    inside.add(name)
                    todo.append(lib_dir / name)
            else:
                outside.add(name)
    return sorted(inside), sorted(outside)


def stage_triton(site: Path, staging: Path) -> list[str]:
    """Copy the parts of the wheel the proof needs into ``staging``; returns a report."""
    server = site / "pytriton" / "tritonserver"
    lib_dir = site / "nvidia_pytriton.libs"
    files = [
        server / "bin" / "tritonserver",
        server / "backends" / "python" / "libtriton_python.so",
        server / "backends" / "python" / "triton_python_backend_utils.py",
        server / "python_backend_stubs" / STUB_VERSION / "triton_python_backend_stub",
        *sorted((server / "caches").rglob("*.so")),
    ]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise SystemExit(f"nvidia-pytriton is incomplete in {site}: missing {missing}")
    elf = [f for f in files if f.suffix != ".py"]
    inside, outside = library_closure(elf, lib_dir)
    for path in files:
        target = staging / path.relative_to(site)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    (staging / "nvidia_pytriton.libs").mkdir()
    for name in inside:
        shutil.copy2(lib_dir / name, staging / "nvidia_pytriton.libs" / name)
    left_out = sorted(set(os.listdir(lib_dir)) - set(inside))
    return [
        f"libraries bundled ({len(inside)}): {' '.join(inside)}",
        f"left out of nvidia_pytriton.libs: {' '.join(left_out) or 'nothing'}",
        f"expected from the machine: {' '.join(outside)}",
    ]


def make_tarball(source: Path, tarball: Path, level: int) -> None:
    """``tar | xz`` (multi-threaded) where both exist, else Python's tarfile with lzma."""
    tarball.unlink(missing_ok=True)
    if shutil.which("tar") and shutil.which("xz"):
        with open(tarball, "wb") as out:
            tar = subprocess.Popen(
                ["tar", "-C", str(source), "--sort=name", "--owner=0", "--group=0",
                 "--numeric-owner", "-cf", "-", "."],
                stdout=subprocess.PIPE,
            )  # fmt: skip
            subprocess.run(
                ["xz", f"-{level}", "-T0", "-c"], stdin=tar.stdout, stdout=out, check=True
            )
            if tar.wait() != 0:
                raise SystemExit(f"tar failed for {source}")
        return
    with tarfile.open(tarball, "w:xz", preset=level) as archive:
        for path in sorted(source.rglob("*")):
            archive.add(path, arcname=str(path.relative_to(source)), recursive=False)


def find_python312(explicit: str | None) -> Path | None:
    """A working Python 3.12 here: ``--python312``, ``python3.12`` on PATH, or pyenv's."""
    candidates = [explicit] if explicit else []
    candidates.append(shutil.which("python3.12") or "")
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates += [str(p / "bin" / "python3.12") for p in sorted(pyenv.glob("3.12*"), reverse=True)]
    for candidate in candidates:
        if not candidate or not Path(candidate).exists():
            continue
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 12))"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == "True":
            return Path(candidate)
    return None


def libpython_of(python: Path) -> Path | None:
    code = (
        "import sysconfig as s; print(s.get_config_var('LIBDIR'), s.get_config_var('INSTSONAME'))"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    libdir, soname = out.stdout.split()
    path = Path(libdir) / soname
    return path if soname.endswith(".so.1.0") and path.exists() else None


def bundle_libpython(python: Path | None, tarball: Path, level: int) -> str:
    if python is None:
        tarball.unlink(missing_ok=True)
        return "no Python 3.12 here: no fallback libpython carried"
    library = libpython_of(python)
    if library is None:
        tarball.unlink(missing_ok=True)
        return f"{python} has no shared libpython: no fallback carried"
    version = subprocess.run(
        [str(python), "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / library.name
        shutil.copy2(library, copy)
        if shutil.which("strip"):
            subprocess.run(["strip", "--strip-debug", str(copy)], check=True)
        (Path(tmp) / "VERSION").write_text(f"{version} from {library}\n")
        make_tarball(Path(tmp), tarball, level)
    return f"fallback libpython {version} from {library}"


def download_wheels(wheel_dir: Path, requirements: tuple[str, ...]) -> None:
    """``pip download`` CPython 3.12 x86-64 wheels, no dependencies (each is named)."""
    wheel_dir.mkdir(exist_ok=True)
    for old in wheel_dir.glob("*.whl"):
        old.unlink()
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
         "--python-version", STUB_VERSION, "--implementation", "cp", *platforms,
         "-d", str(wheel_dir), *requirements],
        check=True,
    )  # fmt: skip


def bundle_stub_site(tarball: Path, level: int) -> str:
    """NumPy 1.x unpacked from its wheel (a wheel's files are its installed tree), tests
    dropped, as a tarball: the stub's ``sys.path`` gets it first."""
    with tempfile.TemporaryDirectory() as tmp:
        download_wheels(Path(tmp) / "wheel", (STUB_NUMPY,))
        (wheel,) = (Path(tmp) / "wheel").glob("*.whl")
        site = Path(tmp) / "site"
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(site)
        for tests in sorted(site.rglob("tests"), reverse=True):
            if tests.is_dir():
                shutil.rmtree(tests)
        make_tarball(site, tarball, level)
    return f"{tarball.name}: {wheel.name} for the stub, {tarball.stat().st_size / 2**20:.1f} MiB"


def check_wheel_names(wheel_dir: Path) -> list[str]:
    """Wheels whose tags would not install on CPython 3.12 / x86-64 Linux."""
    tag = "cp" + STUB_VERSION.replace(".", "")
    bad = []
    for wheel in sorted(wheel_dir.glob("*.whl")):
        _, _, python_tag, abi, platform_tag = wheel.stem.rsplit("-", 4)
        python_ok = tag in python_tag.split(".") or python_tag.startswith(("py3", "cp39"))
        abi_ok = abi in {"none", "abi3", tag}
        platform_ok = platform_tag == "any" or (
            "x86_64" in platform_tag and "manylinux" in platform_tag
        )
        if not (python_ok and abi_ok and platform_ok):
            bad.append(wheel.name)
    return bad


def verify_triton(tarball: Path) -> list[str]:
    """Unpack as the device will (tarfile) and run the server's ``--help`` and ``ldd``."""
    report = []
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(tarball, "r:xz") as archive:
            archive.extractall(tmp, filter="tar")
        root = Path(tmp)
        binary = root / "pytriton/tritonserver/bin/tritonserver"
        help_run = subprocess.run([str(binary), "--help"], capture_output=True, text=True)
        usage = "--model-repository" in help_run.stdout + help_run.stderr
        report.append(f"tritonserver --help from the unpacked bundle: usage printed={usage}")
        if not usage:
            raise SystemExit(f"tritonserver --help failed:\n{help_run.stderr[-2000:]}")
        stub = root / f"pytriton/tritonserver/python_backend_stubs/{STUB_VERSION}"
        for path in (binary, root / "pytriton/tritonserver/backends/python/libtriton_python.so",
                     stub / "triton_python_backend_stub"):  # fmt: skip
            ldd = subprocess.run(["ldd", str(path)], capture_output=True, text=True).stdout
            missing = [line.split()[0] for line in ldd.splitlines() if "not found" in line]
            report.append(f"ldd {path.name}: unresolved {missing or 'none'}")
            if any("libpython" not in m for m in missing):
                raise SystemExit(f"{path} needs libraries the bundle lacks: {missing}")
    return report


def install_wheels(python: Path | None, wheel_dir: Path) -> str:
    if python is None:
        return "no Python 3.12 here: wheel tags checked only"
    with tempfile.TemporaryDirectory() as target:
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
             "--no-cache-dir", "--upgrade", "--target", target,
             *map(str, sorted(wheel_dir.glob("*.whl")))],
            check=True,
        )  # fmt: skip
        count = len(list(Path(target).glob("*.dist-info")))
    return f"{count} wheels installed with {python} (pip --no-index --no-deps --target)"


def travelling_bytes(carried: list[Path]) -> tuple[int, int]:
    """Bytes of the tracked and untracked-not-ignored files, and of the carried folders."""
    listing = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout
    tree = sum(
        (ROOT / name).stat().st_size
        for name in {n.decode() for n in listing.split(b"\0") if n}
        if (ROOT / name).is_file()
    )
    extra = sum(p.stat().st_size for folder in carried for p in folder.rglob("*") if p.is_file())
    return tree, extra


def ensure_ignored(*folders: str) -> None:
    """Add ``/<folder>/`` to ``.git/info/exclude`` unless git already ignores it."""
    git_dir = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--git-path", "info/exclude"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    exclude = (ROOT / git_dir).resolve()
    for folder in folders:
        probe = subprocess.run(
            ["git", "-C", str(ROOT), "check-ignore", "-q", f"{folder}/probe"], check=False
        )
        if probe.returncode != 0:
            exclude.parent.mkdir(parents=True, exist_ok=True)
            with open(exclude, "a", encoding="utf-8") as out:
                out.write(f"/{folder}/\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m perf.gpu_bundle", description=__doc__)
    parser.add_argument("--site", type=Path, default=Path(sysconfig.get_paths()["purelib"]))
    parser.add_argument("--bundle", type=Path, default=ROOT / ".gpubundle")
    parser.add_argument("--wheels", type=Path, default=ROOT / ".whl")
    parser.add_argument("--python312", help="a Python 3.12 for the fallback and the wheel check")
    parser.add_argument("--level", type=int, default=9, help="xz preset (0-9)")
    parser.add_argument("--skip-wheels", action="store_true", help="keep .whl/ as it is")
    args = parser.parse_args(argv)

    ensure_ignored(args.bundle.name, args.wheels.name)
    args.bundle.mkdir(exist_ok=True)
    tarball = args.bundle / "triton.tar.xz"
    stamp = args.bundle / "triton.inputs"
    with tempfile.TemporaryDirectory() as tmp:
        report = stage_triton(args.site, Path(tmp))
        files = [p for p in sorted(Path(tmp).rglob("*")) if p.is_file()]
        raw = sum(p.stat().st_size for p in files)
        inputs = "".join(f"{p.relative_to(tmp)} {p.stat().st_size}\n" for p in files)
        inputs += f"xz -{args.level}\n"
        if tarball.exists() and stamp.exists() and stamp.read_text() == inputs:
            print(f"{tarball} is up to date (same files, sizes and xz level): kept")
        else:
            print(f"compressing {raw / 2**20:.1f} MiB (xz -{args.level}; minutes on 2 cores)")
            stamp.unlink(missing_ok=True)
            make_tarball(Path(tmp), tarball, args.level)
            stamp.write_text(inputs)
    report.append(
        f"{tarball.name}: {raw / 2**20:.1f} MiB -> {tarball.stat().st_size / 2**20:.1f} MiB"
    )
    python312 = find_python312(args.python312)
    report.append(
        bundle_libpython(python312, args.bundle / "libpython-fallback.tar.xz", args.level)
    )
    if not args.skip_wheels:
        report.append(bundle_stub_site(args.bundle / "stub-site.tar.xz", args.level))
        download_wheels(args.wheels, WHEELS)
    bad = check_wheel_names(args.wheels)
    if bad:
        raise SystemExit(f"wheels that will not install on CPython 3.12 x86-64: {bad}")
    report.append(install_wheels(python312, args.wheels))
    report += verify_triton(tarball)
    tree, carried = travelling_bytes([args.bundle, args.wheels])
    wheels = sum(p.stat().st_size for p in args.wheels.glob("*.whl"))
    total = tree + carried
    report += [
        f"wheels: {len(list(args.wheels.glob('*.whl')))} files, {wheels / 2**20:.1f} MiB",
        f"travels: tree {tree / 2**20:.1f} MiB + carried {carried / 2**20:.1f} MiB = "
        f"{total / 2**20:.1f} MiB of {LIMIT_BYTES / 2**20:.0f} MiB",
    ]
    print("\n".join(report))
    if total >= LIMIT_BYTES:
        print("TOO BIG: the device call would be refused")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
