"""The Dockerfiles (which cannot be built here): what they copy exists, and their requirement
lists provide every third-party module the code in the image imports."""

from __future__ import annotations

import ast
import functools
import importlib.util
import json
import re
import subprocess
import sys
from importlib.metadata import distribution, packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.rendering import DEPLOY, REPO

DOCKER = DEPLOY / "docker"
FIRST_PARTY = {"toolmesh", "toolmesh_gateway", "toolmesh_models"}
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


def test_gateway_image_provides_what_the_gateway_imports() -> None:
    # the entry point, plus the Kubernetes watch it imports lazily
    files = loaded_files(
        "toolmesh_gateway.__main__", "toolmesh_gateway.server", "toolmesh_gateway.kube"
    )
    imports = third_party_imports(files)
    tops = {m.split(".")[0] for m in imports}
    assert {"grpc", "kubernetes", "tritonclient"} <= tops  # the scan sees real imports
    missing = missing_from("gateway.requirements.txt", imports)
    assert not missing, f"add to deploy/docker/gateway.requirements.txt: {missing}"


#: toolmesh_models modules that run only on a developer's machine, never in the Triton image.
LOCAL_ONLY = {"server", "perf_analyzer"}


def test_triton_image_provides_what_the_models_import() -> None:
    # everything the image holds may run: the models, and all of toolmesh_models they
    # may load lazily (the renderer of the init container included)
    package = REPO / "triton_models" / "toolmesh_models"
    files = sorted((REPO / "triton_models" / "repository").glob("*/1/model.py"))
    files += [p for p in sorted(package.glob("*.py")) if p.stem not in LOCAL_ONLY]
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
    # toolmesh_models finds its repository and weights beside itself (paths.ROOT)
    assert "PYTHONPATH=/opt/toolmesh/triton_models" in text
    for part in ("toolmesh_models", "repository", "weights"):
        assert f"/opt/toolmesh/triton_models/{part}" in text


def test_triton_image_keeps_numpy_below_2_for_the_python_backend_stub() -> None:
    """Triton 24.10's stub garbles string tensors under NumPy 2 (perf/results/gpu)."""
    lines = (DOCKER / "triton.requirements.txt").read_text().splitlines()
    numpy = [Requirement(line) for line in lines if line.startswith("numpy")]
    assert len(numpy) == 1
    assert "1.26.4" in numpy[0].specifier and "2.0.0" not in numpy[0].specifier
