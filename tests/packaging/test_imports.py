"""Imports run one way (local → gateway / models / codegen → the client's public modules),
and import-linter's contracts in pyproject.toml are what enforces it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.packaging.wheels import PARTS, REPO, tracked_copy

LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports with the project's contracts over the packages found under ``tree``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(tree / f) for f in PARTS)}
    return subprocess.run(
        [LINT_IMPORTS, str(REPO / "pyproject.toml"), "--no-cache"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tree,
        check=False,
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("imports")
    for folder in PARTS:
        tracked_copy(folder, root)
    return root


def test_the_project_keeps_its_contracts(tree: Path) -> None:
    result = lint_imports(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 4 kept, 0 broken." in result.stdout


@pytest.mark.parametrize(
    ("module", "statement", "broken"),
    [
        # the client reaching up into a part above it
        ("sdk/toolmesh/wire.py", "import toolmesh_gateway.errors", "Parts are layered"),
        # the gateway depending on the models package (the Function folder is a setting)
        ("gateway/toolmesh_gateway/config.py", "import toolmesh_models.paths", "Parts are layered"),
        # codegen using a private module of the client
        ("codegen/toolmesh_codegen/run.py", "import toolmesh._config", "public modules"),
        # the planner reaching up into the one-machine orchestration
        ("planner/toolmesh_planner/search.py", "import toolmesh_local.mesh", "Parts are layered"),
        # the planner importing its sibling (it takes call graphs as data instead)
        (
            "planner/toolmesh_planner/workload.py",
            "import toolmesh_codegen.parallelize",
            "Parts are layered",
        ),
        # the planner using a private module of the client
        ("planner/toolmesh_planner/cli.py", "import toolmesh.batch._runner", "public modules"),
        # one CLI command module importing another
        ("sdk/toolmesh/cli/_batch.py", "import toolmesh.cli._calls", "never each other"),
    ],
)
def test_a_wrong_way_import_fails_lint(
    tree: Path, tmp_path: Path, module: str, statement: str, broken: str
) -> None:
    copy = tmp_path / "tree"
    shutil.copytree(tree, copy)
    path = copy / module
    path.write_text(path.read_text() + f"\n{statement}  # wrong way\n")
    result = lint_imports(copy)
    assert result.returncode == 1, result.stdout
    assert broken in result.stdout and "BROKEN" in result.stdout
