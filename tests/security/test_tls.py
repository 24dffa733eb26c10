"""TLS and mutual TLS on the gateway, with certificates made by the test itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import toolmesh
from tests.security.conftest import Pki, assert_greyscale_of, running_gateway
from toolmesh import TlsConfig
from toolmesh_gateway.tls import TlsError, TlsFiles
from toolmesh_local.mesh import LocalMesh


def address_of(port: int) -> str:
    return f"127.0.0.1:{port}"  # the server certificate names 127.0.0.1 and localhost


async def test_tls_call_verifies_the_server_and_returns_the_result(
    mesh: LocalMesh, pki: Pki, rgb_pattern: np.ndarray
) -> None:
    async with running_gateway(mesh, tls=TlsFiles(pki.server.cert, pki.server.key)) as gw:
        async with toolmesh.Client(address_of(gw.port), tls=TlsConfig(ca=pki.ca.pair.cert)) as c:
            assert_greyscale_of(await c.call("greyscale", image=rgb_pattern), rgb_pattern)
        # A plaintext client cannot speak to a TLS listener…
        async with toolmesh.Client(address_of(gw.port), tls=False, timeout=5) as c:
            with pytest.raises(toolmesh.Unavailable):
                await c.call("greyscale", image=rgb_pattern)
        # …and a client that does not trust the server's CA refuses the handshake.
        untrusting = TlsConfig(ca=pki.rogue_ca.pair.cert)
        async with toolmesh.Client(address_of(gw.port), tls=untrusting, timeout=5) as c:
            with pytest.raises(toolmesh.Unavailable):
                await c.call("greyscale", image=rgb_pattern)


async def test_mutual_tls_admits_only_clients_with_a_certificate_from_the_client_ca(
    mesh: LocalMesh, pki: Pki, rgb_pattern: np.ndarray
) -> None:
    files = TlsFiles(pki.server.cert, pki.server.key, client_ca=pki.ca.pair.cert)
    async with running_gateway(mesh, tls=files) as gw:
        address = address_of(gw.port)
        no_cert = TlsConfig(ca=pki.ca.pair.cert)
        async with toolmesh.Client(address, tls=no_cert, timeout=5) as c:
            with pytest.raises(toolmesh.Unavailable):
                await c.call("greyscale", image=rgb_pattern)
        rogue = TlsConfig(ca=pki.ca.pair.cert, cert=pki.rogue_client.cert, key=pki.rogue_client.key)
        async with toolmesh.Client(address, tls=rogue, timeout=5) as c:
            with pytest.raises(toolmesh.Unavailable):
                await c.call("greyscale", image=rgb_pattern)
        good = TlsConfig(ca=pki.ca.pair.cert, cert=pki.client.cert, key=pki.client.key)
        async with toolmesh.Client(address, tls=good) as c:
            assert_greyscale_of(await c.call("greyscale", image=rgb_pattern), rgb_pattern)


async def test_client_takes_tls_settings_from_the_environment(
    mesh: LocalMesh, pki: Pki, rgb_pattern: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = TlsFiles(pki.server.cert, pki.server.key, client_ca=pki.ca.pair.cert)
    async with running_gateway(mesh, tls=files) as gw:
        monkeypatch.setenv("TOOLMESH_ADDRESS", address_of(gw.port))
        monkeypatch.setenv("TOOLMESH_TLS_CA", str(pki.ca.pair.cert))
        monkeypatch.setenv("TOOLMESH_TLS_CERT", str(pki.client.cert))
        monkeypatch.setenv("TOOLMESH_TLS_KEY", str(pki.client.key))
        async with toolmesh.Client() as c:
            assert_greyscale_of(await c.call("greyscale", image=rgb_pattern), rgb_pattern)


def test_tls_files_errors_name_the_file_and_never_echo_a_key(tmp_path: Path, pki: Pki) -> None:
    with pytest.raises(TlsError, match=r"cannot read the TLS certificate .*missing\.crt"):
        TlsFiles(tmp_path / "missing.crt", pki.server.key).credentials()
    secret = "-----BEGIN NOTHING-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n"
    not_a_key = tmp_path / "bad.key"
    not_a_key.write_text(secret)
    with pytest.raises(TlsError) as raised:
        TlsFiles(pki.server.cert, not_a_key).credentials()
    assert "not a PEM file holding a PRIVATE KEY" in str(raised.value)
    assert "c2VjcmV0" not in str(raised.value)


def test_client_tls_config_needs_cert_and_key_together(pki: Pki) -> None:
    with pytest.raises(ValueError, match="certificate needs its private key"):
        TlsConfig(cert=pki.client.cert)


def test_gateway_with_a_half_tls_configuration_refuses_to_start(pki: Pki) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "toolmesh_gateway", f"--tls-cert={pki.server.cert}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "TLS needs both a certificate and its private key" in done.stderr


async def test_plaintext_health_port_serves_probes_and_nothing_else(
    mesh: LocalMesh, pki: Pki, rgb_pattern: np.ndarray
) -> None:
    files = TlsFiles(pki.server.cert, pki.server.key)
    async with running_gateway(mesh, tls=files, health_address="127.0.0.1:0") as gw:
        assert gw.health_port is not None
        probe_address = address_of(gw.health_port)
        async with grpc.aio.insecure_channel(probe_address) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="toolmesh.v1.Functions"), timeout=10
            )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        async with toolmesh.Client(probe_address, tls=False, timeout=10) as c:
            with pytest.raises(toolmesh.RemoteError) as raised:
                await c.call("greyscale", image=rgb_pattern)
        assert raised.value.code == grpc.StatusCode.UNIMPLEMENTED
