"""Fixtures of the codegen tests: the live registry and one sandbox for the module."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import toolmesh
from toolmesh_codegen import Limits, Sandbox

ROOT = Path(__file__).resolve().parents[2]
CORPUS = sorted((ROOT / "codegen" / "corpus").glob("*.py"))


@pytest.fixture(scope="session")
async def functions(address: str) -> list[toolmesh.FunctionInfo]:
    async with toolmesh.Client(address) as client:
        return await client.functions()


@pytest.fixture(scope="session")
async def sandbox(address: str) -> AsyncIterator[Sandbox]:
    async with Sandbox(address, limits=Limits(timeout_s=120)) as box:
        yield box
