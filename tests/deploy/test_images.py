"""The Dockerfiles, without Docker (none runs here): their COPY and RUN steps replayed into a
folder and a fresh virtual environment, the gateway image's result started against Triton,
and the Triton image's requirement list checked against what the models import."""

from __future__ import annotations

import ast
import asyncio
import functools
import importlib.util
import json
import os
import re
import subprocess
import sys
from importlib.metadata import distribution, packages_distributions
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import toolmesh
from tests.deploy.dockerfile import replay
from tests.deploy.rendering import DEPLOY, REPO
from tests.packaging.wheels import fresh_venv, installed
from toolmesh_local.mesh import LocalMesh, wait_for_health
from toolmesh_local.triton import free_port

DOCKER = DEPLOY / "docker"
FIRST_PARTY = {
    "toolmesh",
    "toolmesh_gateway",
    "toolmesh_models",
    "toolmesh_codegen",
    "toolmesh_local",
}
#: Modules only the running Triton provides.
PROVIDED_BY_TRITON = {"triton_python_backend_utils"}
#: Distributions that provide the same modules as the ones installed here.
SAME_MODULES = {"onnxruntime-gpu": "onnxruntime"}

# Prints the files of the first-party modules that importing the given entry points loads.
LOADED = """
import importlib, importlib.util, json, sys
for target in sys.argv[1:]:
    if target.endswith(".py"):
        spec = importlib.util.spec_from_file_location("model_" + str(abs(hash(target))), target)
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    else:
        importlib.import_module(target)
first = {"toolmesh", "toolmesh_gateway", "toolmesh_models"}
print(json.dumps(sorted(
    m.__file__ for n, m in list(sys.modules.items())
    if n.split(".")[0] in first and getattr(m, "__file__", None)
)))
"""


def loaded_files(*targets: str) -> list[Path]:
    result = subprocess.run(
        [sys.executable, "-c", LOADED, *targets], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return [Path(f) for f in json.loads(result.stdout)]


def _optional(node: ast.Try) -> bool:
    """A ``try`` whose handlers catch ImportError: its imports are optional."""
    for handler in node.handlers:
        names = [handler.type] if not isinstance(handler.type, ast.Tuple) else handler.type.elts
        if any(
            isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError")
            for n in names
        ):
            return True
    return False


def third_party_imports(files: list[Path]) -> set[str]:
    """Modules ``files`` import (dotted, as written), except stdlib, ours and optional ones.

    ``from a.b import c`` gives ``a.b.c`` (``c`` may be a submodule; resolution falls
    back to ``a.b``). Imports inside functions count: they run when the code does.
    """
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Try) and _optional(node):
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.update(f"{node.module}.{a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    for path in files:
        visit(ast.parse(path.read_text(encoding="utf-8")))
    skip = set(sys.stdlib_module_names) | FIRST_PARTY | PROVIDED_BY_TRITON | {"__future__"}
    return {m for m in found if m.split(".")[0] not in skip}


_packages = functools.cache(packages_distributions)


def _owner_of_file(top: str, origin: Path) -> str | None:
    candidates = _packages().get(top, [])
    if len(set(candidates)) == 1:
        return canonicalize_name(candidates[0])
    for name in set(candidates):  # a namespace package (opentelemetry): ask each one's files
        dist = distribution(name)
        if any(Path(str(dist.locate_file(f))).resolve() == origin for f in dist.files or ()):
            return canonicalize_name(name)
    return None


def owner(module: str) -> str | None:
    """The installed distribution whose files hold ``module`` (or, failing that, its parent)."""
    candidates = [module]
    while "." in candidates[-1]:
        candidates.append(candidates[-1].rpartition(".")[0])
    for name in candidates:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is not None and spec.origin and spec.origin not in ("built-in", "frozen"):
            return _owner_of_file(module.split(".")[0], Path(spec.origin).resolve())
    return None


def requirements(name: str) -> set[str]:
    lines = (DOCKER / name).read_text(encoding="utf-8").splitlines()
    names = set()
    for line in lines:
        line = line.split("#")[0].strip()
        if line:
            dist = canonicalize_name(Requirement(line).name)
            names.add(canonicalize_name(SAME_MODULES.get(dist, dist)))
    return names


def missing_from(requirements_file: str, modules: set[str]) -> list[str]:
    provided = requirements(requirements_file)
    missing = []
    for module in sorted(modules):
        dist = owner(module)
        if dist not in provided:
            missing.append(f"{module} (from {dist or 'no installed distribution'})")
    return missing


def test_gateway_image_replayed_installs_and_serves(
    mesh: LocalMesh, street_jpeg: bytes, tmp_path: Path
) -> None:
    root = tmp_path / "image"
    python = fresh_venv(tmp_path / "venv")
    ran = replay(DOCKER / "gateway.Dockerfile", REPO, root, python.parent.parent)
    assert any("pip install ./sdk ./gateway" in command for command in ran)
    present = installed(python)
    assert {"toolmesh", "toolmesh-gateway"} <= set(present)
    # the image carries the gateway, not the models, the runtime or the orchestration
    assert not {"toolmesh-models", "toolmesh-local", "nvidia-pytriton", "onnxruntime"} & set(
        present
    )
    functions = root / "opt" / "toolmesh" / "functions"
    assert (functions / "find.yaml").is_file()
    assert not (root / "src").exists()  # the build's sources are removed, as the RUN says

    address = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLMESH_")}
    env.pop("PYTHONPATH", None)
    # the image's ENV, with the paths of the replayed root
    env.update(TOOLMESH_ADDRESS=address, TOOLMESH_FUNCTIONS_DIR=str(functions))
    gateway = subprocess.Popen(
        [str(python.parent / "toolmesh-gateway"), f"--triton-url={mesh.triton_urls[0]}"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_health(address, timeout=60)
        result = asyncio.run(_call_find(address, street_jpeg))
        assert result and {"box", "label", "score"} <= set(result[0])
        assert {r["label"] for r in result} == {"person"}
    finally:
        gateway.terminate()
        output = gateway.communicate(timeout=30)[0].decode(errors="replace")
    assert gateway.returncode == 0, output


async def _call_find(address: str, image: bytes) -> Any:
    async with toolmesh.Client(address, timeout=60) as client:
        return await client.call("find", image=image, object_name="person")


def test_triton_image_replayed_installs_the_models_with_their_data(tmp_path: Path) -> None:
    root = tmp_path / "image"
    python = fresh_venv(tmp_path / "venv")
    # the third-party requirements (CUDA builds of torch and ONNX Runtime) are not installed
    # here; test_triton_image_provides_what_the_models_import checks that list instead
    ran = replay(
        DOCKER / "triton.Dockerfile",
        REPO,
        root,
        python.parent.parent,
        skip=lambda command: "requirements.txt" in command,
    )
    assert any("--no-deps /tmp/toolmesh-models" in command for command in ran)
    assert installed(python).get("toolmesh-models") == "0.1.0"
    repository = root / "opt" / "toolmesh-repository"
    assert repository.is_symlink()
    served = sorted(p.parent.name for p in repository.resolve().glob("*/config.pbtxt"))
    committed = sorted(
        p.parent.name
        for p in (REPO / "triton_models/toolmesh_models/repository").glob("*/config.pbtxt")
    )
    assert served == committed and "find" in served
    for name in served:
        assert (repository / name / "1" / "model.py").is_file(), name
    assert (repository.resolve().parent / "weights" / "centernet.onnx").is_file()
    assert not (root / "tmp" / "toolmesh-models").exists()


def test_triton_image_provides_what_the_models_import() -> None:
    # everything the image holds may run: the models, and all of toolmesh_models they
    # may load lazily (the renderer of the init container included)
    package = REPO / "triton_models" / "toolmesh_models"
    files = sorted((package / "repository").glob("*/1/model.py"))
    files += sorted(package.glob("*.py"))
    imports = third_party_imports(files)
    assert {"numpy", "onnxruntime", "PIL", "yaml"} <= {m.split(".")[0] for m in imports}
    missing = missing_from("triton.requirements.txt", imports)
    assert not missing, f"add to deploy/docker/triton.requirements.txt: {missing}"


def test_import_scan_skips_optional_imports_only(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "import numpy\ntry:\n    import optional_thing\nexcept ImportError:\n    pass\n"
        "def f():\n    import lazily_needed\n"
    )
    assert third_party_imports([source]) == {"numpy", "lazily_needed"}
    # a namespace package is resolved to the distribution of the submodule imported
    assert owner("opentelemetry.instrumentation.grpc") == "opentelemetry-instrumentation-grpc"
    assert owner("opentelemetry.trace") == "opentelemetry-api"


@pytest.mark.parametrize("dockerfile", sorted(DOCKER.glob("*.Dockerfile")), ids=lambda p: p.name)
def test_dockerfile_copies_files_that_exist(dockerfile: Path) -> None:
    copies = re.findall(
        r"^COPY\s+(.+)$", dockerfile.read_text(encoding="utf-8"), flags=re.MULTILINE
    )
    assert copies
    for line in copies:
        *sources, _ = line.split()
        for source in sources:
            assert list(REPO.glob(source)), f"{dockerfile.name}: COPY {source}: nothing there"


def test_triton_image_is_ngc_tritonserver() -> None:
    text = (DOCKER / "triton.Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^ARG TRITON_VERSION=2\d\.\d\d$", text, flags=re.MULTILINE)
    assert "FROM nvcr.io/nvidia/tritonserver:${TRITON_VERSION}-py3" in text
    # the repository is the installed package's data, linked where tritonserver looks
    assert '"--model-repository=/opt/toolmesh-repository"' in text


def test_triton_image_keeps_numpy_below_2_for_the_python_backend_stub() -> None:
    """Triton 24.10's stub garbles string tensors under NumPy 2 (perf/results/gpu)."""
    lines = (DOCKER / "triton.requirements.txt").read_text().splitlines()
    numpy = [Requirement(line) for line in lines if line.startswith("numpy")]
    assert len(numpy) == 1
    assert "1.26.4" in numpy[0].specifier and "2.0.0" not in numpy[0].specifier
