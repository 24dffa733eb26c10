"""Session fixtures: one real mesh (tritonserver + gateway processes) for the whole suite."""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import toolmesh
from toolmesh.data import STREET_FRAMES
from toolmesh_local.mesh import LocalMesh
from toolmesh_models.paths import FUNCTIONS_DIR

# The gateway takes its Function documents from a setting (it does not import the models
# package); gateways the tests start by hand read the bundled ones, as `toolmesh up` passes.
os.environ.setdefault("TOOLMESH_FUNCTIONS_DIR", str(FUNCTIONS_DIR))


@pytest.fixture(scope="session")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    """Triton and the gateway, started the way `toolmesh up` starts them.

    Its model store is empty: the transformer functions stay listed as unavailable
    (tests/gateway/test_toolbox.py serves them from tiny models in a mesh of its own).
    """
    store = tmp_path_factory.mktemp("empty-model-store")
    local = LocalMesh(
        run_dir=tmp_path_factory.mktemp("mesh"), env={"TOOLMESH_MODEL_DIR": str(store)}
    )
    local.start(timeout=240)
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="session")
def address(mesh: LocalMesh) -> str:
    return mesh.address


@pytest.fixture
async def client(address: str) -> AsyncIterator[toolmesh.Client]:
    async with toolmesh.Client(address, timeout=60) as c:
        yield c


@pytest.fixture(scope="session")
def street_paths() -> list[Path]:
    paths = sorted(STREET_FRAMES.glob("*.jpg"))
    assert len(paths) == 31
    return paths


@pytest.fixture(scope="session")
def street_jpeg(street_paths: list[Path]) -> bytes:
    return street_paths[0].read_bytes()


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def rgb_pattern() -> np.ndarray:
    """A small asymmetric RGB image: every pixel differs, so rotations are distinguishable."""
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, size=(37, 53, 3), dtype=np.uint8)
