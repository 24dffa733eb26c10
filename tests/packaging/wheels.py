"""Building each part's wheel from its tracked files, and fresh virtual environments."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: folder → distribution, in dependency order (the client first).
PARTS = {
    "sdk": "toolmesh",
    "gateway": "toolmesh-gateway",
    "triton_models": "toolmesh-models",
    "codegen": "toolmesh-codegen",
    "planner": "toolmesh-planner",
    "local": "toolmesh-local",
}
#: What a client alone must never pull in: the server stack and the other parts.
SERVER_DISTRIBUTIONS = {
    "nvidia-pytriton",
    "onnxruntime",
    "tritonclient",
    "kubernetes",
    "openai",
    "opencv-python-headless",
    "rapidocr",
    "matplotlib",
    "rotel",
    "torch",
    "transformers",
    "toolmesh-gateway",
    "toolmesh-models",
    "toolmesh-codegen",
    "toolmesh-planner",
    "toolmesh-local",
}
#: The virtual environment's own installer, not something the client installed.
VENV_INFRASTRUCTURE = (
    "pip",
    "setuptools",
    "pkg_resources",
    "_distutils_hack",
    "distutils-precedence",
)


def tracked_copy(folder: str, destination: Path) -> Path:
    """The files git tracks under ``folder``: what a clean clone would build from."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", folder], capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    return destination / folder


def build_wheel(folder: str, source_root: Path, out: Path) -> Path:
    """One part's wheel, built by pip from a clean copy of its folder."""
    source = tracked_copy(folder, source_root)
    before = set(out.glob("*.whl"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(source),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    (wheel,) = set(out.glob("*.whl")) - before
    return wheel


def wheel_tag(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/WHEEL"))
        tags = [
            line.split(": ", 1)[1]
            for line in archive.read(name).decode().splitlines()
            if line.startswith("Tag: ")
        ]
    return ",".join(tags)


def fresh_venv(path: Path) -> Path:
    """A new virtual environment (on the interpreter running the tests); its python."""
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(path)], check=True)
    return path / "bin" / "python"


def pip_install(python: Path, *requirements: str, find_links: Path) -> None:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--find-links", str(find_links), *requirements],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def installed(python: Path) -> dict[str, str]:
    """Distribution name (normalised) → version, as that environment sees them."""
    code = (
        "import importlib.metadata as m, json, re;"
        "print(json.dumps({re.sub(r'[-_.]+', '-', d.metadata['Name']).lower(): d.version"
        " for d in m.distributions()}))"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout))


def site_packages_bytes(python: Path) -> int:
    """Bytes in the environment's site-packages, less the venv's own installer."""
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    total = 0
    for entry in Path(site).iterdir():
        if entry.name.startswith(VENV_INFRASTRUCTURE):
            continue
        files = [entry] if entry.is_file() else [p for p in entry.rglob("*") if p.is_file()]
        total += sum(p.stat().st_size for p in files)
    return total
