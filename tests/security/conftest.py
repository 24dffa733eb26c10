"""Gateways with security and limits, started in-process in front of the session's Triton."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.security.certs import Authority, Pair
from toolmesh_gateway.auth import TokenStore
from toolmesh_gateway.config import GatewaySettings
from toolmesh_gateway.server import Gateway, start_gateway
from toolmesh_local.mesh import LocalMesh
from toolmesh_models.paths import FUNCTIONS_DIR


@dataclass(frozen=True)
class Pki:
    ca: Authority
    server: Pair
    client: Pair
    rogue_ca: Authority
    rogue_client: Pair


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = Authority.create(directory, "toolmesh-test-ca")
    rogue = Authority.create(directory, "rogue-ca")
    return Pki(
        ca=ca,
        server=ca.issue("gateway", server=True),
        client=ca.issue("client", server=False),
        rogue_ca=rogue,
        rogue_client=rogue.issue("rogue-client", server=False),
    )


#: Tokens the tests hold; the gateway's file holds only their digests.
ALICE = "tm_alice-test-token-0123456789abcdef"
OPS = "tm_ops-test-token-fedcba9876543210"


@pytest.fixture(scope="session")
def tokens_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tokens") / "tokens.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "tokens": [
                    TokenStore.entry("alice", ALICE, ["greyscale", "rotate"]),
                    TokenStore.entry("ops", OPS, ["*"], kserve=True),
                ]
            }
        )
    )
    return path


@asynccontextmanager
async def running_gateway(mesh: LocalMesh, **settings: Any) -> AsyncIterator[Gateway]:
    """A gateway on a free loopback port in front of ``mesh``'s Triton servers."""
    gateway = await start_gateway(
        GatewaySettings(
            address="127.0.0.1:0",
            triton_url=",".join(mesh.triton_urls),
            functions_dir=FUNCTIONS_DIR,
            **settings,
        )
    )
    try:
        yield gateway
    finally:
        await gateway.stop(0)


def assert_greyscale_of(result: Any, rgb: np.ndarray) -> None:
    """``result`` (a PIL image) is the ITU-R 601 luma of ``rgb``, computed here independently."""
    grey = np.asarray(result, dtype=np.float64)
    assert grey.shape == rgb.shape[:2]
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    assert np.abs(grey - (0.299 * r + 0.587 * g + 0.114 * b)).max() <= 1.0
