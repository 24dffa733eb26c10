"""Bearer tokens: who may call, what they may call, and that no secret leaks."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc.aio as triton_aio
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

import toolmesh
from tests.security.conftest import ALICE, OPS, assert_greyscale_of, running_gateway
from toolmesh import ClientSettings
from toolmesh_gateway.auth import TokenStore, TokenStoreError, bearer_token, hash_token
from toolmesh_local.mesh import LocalMesh, wait_for_health
from toolmesh_local.triton import free_port

TOOLMESH = str(Path(sys.executable).parent / "toolmesh")


async def test_missing_wrong_and_malformed_tokens_are_unauthenticated(
    mesh: LocalMesh, tokens_file: Path, rgb_pattern: np.ndarray
) -> None:
    async with running_gateway(mesh, tokens_file=tokens_file) as gw:
        address = f"127.0.0.1:{gw.port}"
        async with toolmesh.Client(address) as c:
            with pytest.raises(toolmesh.Unauthenticated, match="authorization: Bearer"):
                await c.call("greyscale", image=rgb_pattern)
            with pytest.raises(toolmesh.Unauthenticated):
                await c.functions()
        wrong = "tm_not-a-token-anyone-was-given"
        async with toolmesh.Client(address, token=wrong) as c:
            with pytest.raises(toolmesh.Unauthenticated) as raised:
                await c.call("greyscale", image=rgb_pattern)
            assert raised.value.details == "invalid token"
        basic = toolmesh.Client(address, metadata=[("authorization", f"Basic {ALICE}")])
        async with basic as c:
            with pytest.raises(toolmesh.Unauthenticated):
                await c.call("greyscale", image=rgb_pattern)


async def test_token_grants_only_its_functions(
    mesh: LocalMesh, tokens_file: Path, rgb_pattern: np.ndarray, street_jpeg: bytes
) -> None:
    async with running_gateway(mesh, tokens_file=tokens_file) as gw:
        address = f"127.0.0.1:{gw.port}"
        async with toolmesh.Client(address, token=ALICE) as alice:
            assert_greyscale_of(await alice.call("greyscale", image=rgb_pattern), rgb_pattern)
            with pytest.raises(toolmesh.PermissionDenied) as raised:
                await alice.call("find", image=street_jpeg, object_name="person")
            assert raised.value.details == "token 'alice' may not call function 'find'"
            # Views keep the credentials even when they replace the metadata.
            view = alice.with_options(metadata=[("x-request-id", "42")])
            assert_greyscale_of(await view.call("greyscale", image=rgb_pattern), rgb_pattern)
            assert {f.name for f in await alice.functions()} >= {"find", "greyscale"}
        async with toolmesh.Client(address, token=OPS) as ops:
            people = await ops.call("find", image=street_jpeg, object_name="person")
            assert people and all(box["label"] == "person" for box in people)


async def test_health_is_open_and_reflection_follows_its_setting(
    mesh: LocalMesh, tokens_file: Path
) -> None:
    async def services(address: str, token: str | None) -> list[str]:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            metadata = (("authorization", f"Bearer {token}"),) if token else None
            call = stub.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                metadata=metadata,
                timeout=10,
            )
            async for reply in call:
                return [s.name for s in reply.list_services_response.service]
        raise AssertionError("no reflection reply")

    async def health(address: str) -> int:
        async with grpc.aio.insecure_channel(address) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="toolmesh.v1.Functions"), timeout=10
            )
            return int(reply.status)

    async with running_gateway(mesh, tokens_file=tokens_file) as gw:
        address = f"127.0.0.1:{gw.port}"
        assert await health(address) == health_pb2.HealthCheckResponse.SERVING
        assert "toolmesh.v1.Functions" in await services(address, None)
    async with running_gateway(mesh, tokens_file=tokens_file, reflection="authenticated") as gw:
        address = f"127.0.0.1:{gw.port}"
        assert await health(address) == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await services(address, None)
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "toolmesh.v1.Functions" in await services(address, ALICE)
    async with running_gateway(mesh, reflection="off") as gw:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await services(f"127.0.0.1:{gw.port}", None)
        assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_kserve_api_needs_a_token_that_grants_it(
    mesh: LocalMesh, tokens_file: Path, rgb_pattern: np.ndarray
) -> None:
    async with running_gateway(mesh, tokens_file=tokens_file) as gw:
        client = triton_aio.InferenceServerClient(f"127.0.0.1:{gw.port}")
        try:
            with pytest.raises(Exception, match=r"UNAUTHENTICATED|missing credentials"):
                await client.is_server_live()
            with pytest.raises(Exception, match="may not use the KServe inference API"):
                await client.is_server_live(headers={"authorization": f"Bearer {ALICE}"})
            assert await client.is_server_live(headers={"authorization": f"Bearer {OPS}"})
            pixels = triton_aio.InferInput("image_array", list(rgb_pattern.shape), "UINT8")
            pixels.set_data_from_numpy(rgb_pattern)
            result = await client.infer(
                "greyscale", [pixels], headers={"authorization": f"Bearer {OPS}"}
            )
            assert_greyscale_of(np.squeeze(result.as_numpy("result")), rgb_pattern)
        finally:
            await client.close()


def test_token_file_holds_digests_and_names_bad_entries(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(
        yaml.safe_dump({"tokens": [{"name": "x", "sha256": ALICE, "functions": ["*"]}]})
    )
    with pytest.raises(TokenStoreError) as raised:
        TokenStore.load(path)
    assert "tokens[0] (x): 'sha256' must be the 64-hex-digit SHA-256" in str(raised.value)
    assert ALICE not in str(raised.value)
    path.write_text(yaml.safe_dump({"tokens": [TokenStore.entry("x", OPS, ["*"]), "oops"]}))
    with pytest.raises(TokenStoreError, match=r"tokens\[1\]: expected a mapping"):
        TokenStore.load(path)
    entry = TokenStore.entry("ops", OPS, ["find"])
    assert OPS not in yaml.safe_dump(entry) and entry["sha256"] == hash_token(OPS)


def test_bearer_header_parsing() -> None:
    assert bearer_token([("authorization", "Bearer abc")]) == "abc"
    assert bearer_token([("authorization", "bearer  abc ")]) == "abc"
    assert bearer_token([("authorization", "Basic abc")]) is None
    assert bearer_token([("authorization", "Bearer ")]) is None
    assert bearer_token([("x-other", "Bearer abc")]) is None
    assert bearer_token(None) is None


def test_client_settings_never_show_the_token() -> None:
    settings = ClientSettings.resolve("localhost:1", token=OPS)
    assert OPS not in repr(settings) and OPS not in str(settings)
    assert settings.auth_metadata() == (("authorization", f"Bearer {OPS}"),)


def test_secrets_stay_out_of_logs_traces_errors_and_status(
    mesh: LocalMesh, tokens_file: Path, tmp_path: Path, rgb_pattern: np.ndarray
) -> None:
    """A gateway process logging at DEBUG and tracing to a file, called with good and bad tokens."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    trace_file, log_file = tmp_path / "spans.jsonl", tmp_path / "gateway.log"
    env = dict(os.environ, TOOLMESH_TRACE_FILE=str(trace_file), PYTHONUNBUFFERED="1")
    with log_file.open("wb") as log:
        gateway = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "toolmesh_gateway",
                f"--address={address}",
                f"--triton-url={','.join(mesh.triton_urls)}",
                f"--tokens={tokens_file}",
                "--log-level=DEBUG",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    wrong = "tm_wrong-secret-value-never-to-be-logged"
    try:
        wait_for_health(address, timeout=60)

        async def calls() -> list[str]:
            details = []
            for token in (ALICE, wrong, OPS):
                async with toolmesh.Client(address, token=token) as c:
                    for function in ("greyscale", "find"):
                        try:
                            await c.call(function, image=rgb_pattern, object_name="person")
                        except toolmesh.RemoteError as exc:
                            details.append(str(exc))
            return details

        details = asyncio.run(calls())
        assert any("invalid token" in d for d in details)  # the wrong token was refused
        status = subprocess.run(
            [TOOLMESH, "status", "--address", address],
            capture_output=True,
            text=True,
            env=dict(os.environ, TOOLMESH_TOKEN=OPS),
            timeout=60,
        )
        assert status.returncode == 0, status.stderr
        assert mesh.triton_urls[0] in status.stdout
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(timeout=30)
    spans, logs = trace_file.read_text(), log_file.read_text()
    assert "toolmesh.v1.Functions/Call" in spans  # the trace really recorded these calls
    assert "listening on" in logs and "bearer tokens" in logs
    for secret in (ALICE, OPS, wrong):
        assert secret not in spans
        assert secret not in logs
        assert secret not in status.stdout + status.stderr
        assert all(secret not in d for d in details)


def test_token_create_command_makes_a_token_the_gateway_accepts(
    mesh: LocalMesh, tmp_path: Path, rgb_pattern: np.ndarray
) -> None:
    path = tmp_path / "tokens.yaml"
    made = subprocess.run(
        [TOOLMESH, "token", "create", "ci", "-f", str(path), "--functions", "greyscale"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("tm_") and token not in path.read_text()
    assert path.stat().st_mode & 0o077 == 0  # readable by its owner only

    async def use() -> None:
        async with (
            running_gateway(mesh, tokens_file=path) as gw,
            toolmesh.Client(f"127.0.0.1:{gw.port}", token=token) as c,
        ):
            assert_greyscale_of(await c.call("greyscale", image=rgb_pattern), rgb_pattern)
            with pytest.raises(toolmesh.PermissionDenied):
                await c.call("rotate", image=rgb_pattern, angle=90)

    asyncio.run(use())


def test_kserve_proxy_never_forwards_the_callers_token() -> None:
    from toolmesh_gateway.kserve import _forwarded_metadata

    class Context:
        def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
            return (("authorization", f"Bearer {OPS}"), ("x-request-id", "7"))

    forwarded = dict(_forwarded_metadata(Context()))  # type: ignore[arg-type]
    assert forwarded.get("x-request-id") == "7"
    assert "authorization" not in forwarded and OPS not in str(forwarded)
