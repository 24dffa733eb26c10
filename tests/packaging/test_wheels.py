"""Each part installs from its own wheel: the client alone stays light and talks to a mesh;
all the wheels together (not editable) run `toolmesh up` from outside the checkout."""

from __future__ import annotations

import os
import subprocess
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.packaging.wheels import (
    PARTS,
    SERVER_DISTRIBUTIONS,
    build_wheel,
    fresh_venv,
    installed,
    pip_install,
    site_packages_bytes,
    wheel_tag,
)
from toolmesh_local.triton import free_port

CLIENT_DEPENDENCIES = {
    "grpcio",
    "grpcio-health-checking",
    "protobuf",
    "numpy",
    "pillow",
    "typer",
    "rich",
    "pyyaml",
    "opentelemetry-api",
    "opentelemetry-instrumentation-grpc",
}
CLIENT_BUDGET_BYTES = 150 * 2**20

CALL_FIND = """
import asyncio, sys, toolmesh
from pathlib import Path
async def main():
    async with toolmesh.Client(sys.argv[1]) as client:
        people = await client.call("find", image=Path(sys.argv[2]), object_name="person")
    print(len(people), sorted(people[0]))
asyncio.run(main())
"""


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    sources = tmp_path_factory.mktemp("clean-tree")
    return {name: build_wheel(folder, sources, out) for folder, name in PARTS.items()}


def _env() -> dict[str, str]:
    """The environment of a user's shell: no checkout on the path, no test settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLMESH_")}
    env.pop("PYTHONPATH", None)
    env["COLUMNS"] = "200"
    return env


def shell(
    argv: list[str], *, env: dict[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a command of the installed environment the way a user's shell would."""
    return subprocess.run(
        argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout, check=False
    )


def checked(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _requirements(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        lines = archive.read(name).decode().splitlines()
    return [
        Requirement(line.split(": ", 1)[1]) for line in lines if line.startswith("Requires-Dist: ")
    ]


def test_every_part_is_a_pure_python_wheel_with_its_own_dependencies(
    wheels: dict[str, Path],
) -> None:
    assert set(wheels) == set(PARTS.values())
    for wheel in wheels.values():
        assert wheel_tag(wheel) == "py3-none-any", wheel.name
    client = [r for r in _requirements(wheels["toolmesh"]) if not r.marker]
    assert {r.name.lower() for r in client} == CLIENT_DEPENDENCIES
    numpy = next(r for r in client if r.name == "numpy")
    assert numpy.specifier.contains("2.3.0"), "the client takes any NumPy"
    models_numpy = next(r for r in _requirements(wheels["toolmesh-models"]) if r.name == "numpy")
    assert not models_numpy.specifier.contains("2.0.0"), "the python-backend stub needs NumPy 1"
    gateway = {r.name.lower() for r in _requirements(wheels["toolmesh-gateway"])}
    assert "toolmesh-models" not in gateway and "nvidia-pytriton" not in gateway
    with zipfile.ZipFile(wheels["toolmesh-models"]) as archive:
        names = set(archive.namelist())
    for data in (
        "toolmesh_models/placement.yaml",
        "toolmesh_models/functions/find.yaml",
        "toolmesh_models/repository/find/config.pbtxt",
        "toolmesh_models/repository/find/1/model.py",
        "toolmesh_models/weights/centernet.onnx",
    ):
        assert data in names, data


def test_the_client_wheel_alone_is_light_and_calls_a_mesh(
    wheels: dict[str, Path], address: str, street_paths: list[Path], tmp_path: Path
) -> None:
    python = fresh_venv(tmp_path / "client")
    pip_install(python, str(wheels["toolmesh"]), find_links=wheels["toolmesh"].parent)
    present = installed(python)
    assert "toolmesh" in present
    assert not SERVER_DISTRIBUTIONS & set(present), sorted(SERVER_DISTRIBUTIONS & set(present))
    size = site_packages_bytes(python)
    assert size <= CLIENT_BUDGET_BYTES, f"client install is {size / 2**20:.1f} MiB"

    toolmesh = str(python.parent / "toolmesh")
    listing = shell([toolmesh, "ls", "--address", address], env=_env(), cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert "find(image, object_name, threshold=0.3)" in listing.stdout
    called = shell(
        [str(python), "-c", CALL_FIND, address, str(street_paths[0])], env=_env(), cwd=tmp_path
    )
    assert called.returncode == 0, called.stderr
    count, keys = called.stdout.split(" ", 1)
    assert int(count) >= 1 and "score" in keys

    # what the client does not carry says exactly what to install, in one line
    up = shell([toolmesh, "up"], env=_env(), cwd=tmp_path)
    assert up.returncode == 1
    assert up.stderr.strip() == (
        "error: `toolmesh up` needs toolmesh-local, which is not installed: "
        "pip install 'toolmesh[local]'"
    )
    codegen = shell(
        [str(python), "-c", "import toolmesh.codegen; toolmesh.codegen.parallelize('')"],
        env=_env(),
        cwd=tmp_path,
    )
    assert codegen.returncode == 1
    assert "toolmesh._extensions.MissingPart: toolmesh.codegen needs toolmesh-codegen" in (
        codegen.stderr
    )
    assert "pip install 'toolmesh[codegen]'" in codegen.stderr


def test_all_wheels_installed_run_a_mesh_from_outside_the_checkout(
    wheels: dict[str, Path], street_paths: list[Path], tmp_path: Path
) -> None:
    python = fresh_venv(tmp_path / "all")
    pip_install(python, "toolmesh[local]", find_links=wheels["toolmesh"].parent)
    present = installed(python)
    assert {
        "toolmesh",
        "toolmesh-gateway",
        "toolmesh-models",
        "toolmesh-codegen",
        "toolmesh-planner",
        "toolmesh-local",
    } <= set(present)
    located = checked(
        shell(
            [str(python), "-c", "import toolmesh_models.paths as p; print(p.REPOSITORY)"],
            env=_env(),
            cwd=tmp_path,
        )
    ).stdout.strip()
    assert located.startswith(str(tmp_path / "all")), located  # the installed copy, not ours

    toolmesh = str(python.parent / "toolmesh")
    address = f"127.0.0.1:{free_port()}"
    run_dir = tmp_path / "run"
    env = {**_env(), "TOOLMESH_MODEL_DIR": str(tmp_path / "empty-store")}
    up = shell(
        [
            toolmesh,
            "up",
            "--detach",
            "--models",
            "find",
            "--address",
            address,
            "--run-dir",
            str(run_dir),
            "--timeout",
            "240",
        ],
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        called = shell(
            [str(python), "-c", CALL_FIND, address, str(street_paths[0])], env=env, cwd=tmp_path
        )
        assert called.returncode == 0, called.stderr
        assert int(called.stdout.split(" ", 1)[0]) >= 1
    finally:
        down = shell(
            [toolmesh, "down", "--run-dir", str(run_dir)], env=env, cwd=tmp_path, timeout=60
        )
    assert down.returncode == 0, down.stderr
    assert "stopped gateway" in down.stdout
