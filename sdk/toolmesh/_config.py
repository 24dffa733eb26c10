"""Client settings: explicit argument, then ``TOOLMESH_*`` environment, then defaults.

Read when a client is constructed, never at import, so tests and programs can
set the environment late.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import grpc

DEFAULT_ADDRESS = "localhost:50051"
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """How to reach a gateway over TLS.

    ``ca`` verifies the gateway's certificate (None: the system's roots);
    ``cert`` and ``key`` are this client's own certificate for a gateway that
    requires mutual TLS; ``server_name`` overrides the name checked against
    the certificate (an address by IP, a test certificate).
    """

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise ValueError(
                "a client certificate needs its private key, and a key its certificate"
            )

    @classmethod
    def from_env(cls) -> TlsConfig | None:
        """``TOOLMESH_TLS_CA``/``_CERT``/``_KEY``/``_SERVER_NAME``; ``TOOLMESH_TLS=1`` alone: system roots."""
        env = os.environ
        paths = {k: env.get(f"TOOLMESH_TLS_{k.upper()}") or None for k in ("ca", "cert", "key")}
        server_name = env.get("TOOLMESH_TLS_SERVER_NAME") or None
        wanted = env.get("TOOLMESH_TLS", "").lower() in ("1", "true", "yes")
        if not wanted and server_name is None and all(v is None for v in paths.values()):
            return None
        return cls(
            **{k: Path(v) if v is not None else None for k, v in paths.items()},
            server_name=server_name,
        )

    def credentials(self) -> grpc.ChannelCredentials:
        def read(path: Path | None, what: str) -> bytes | None:
            if path is None:
                return None
            try:
                return path.read_bytes()
            except OSError as exc:
                raise ValueError(f"cannot read the TLS {what} {path}: {exc.strerror}") from exc

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca, "CA"),
            private_key=read(self.key, "private key"),
            certificate_chain=read(self.cert, "certificate"),
        )

    def channel_options(self) -> list[tuple[str, str]]:
        if self.server_name is None:
            return []
        return [("grpc.ssl_target_name_override", self.server_name)]


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Where the gateway is, how to reach it, and how long to wait for it."""

    address: str = DEFAULT_ADDRESS
    timeout: float | None = DEFAULT_TIMEOUT_S
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    #: None: plaintext (what ``toolmesh up`` serves locally).
    tls: TlsConfig | None = None
    #: Bearer token sent with every call; kept out of ``repr`` so it never lands in logs.
    token: str | None = field(default=None, repr=False)

    @classmethod
    def resolve(
        cls,
        address: str | None = None,
        timeout: float | _Unset | None = None,
        max_message_bytes: int | None = None,
        *,
        tls: TlsConfig | bool | None = None,
        token: str | None = None,
    ) -> ClientSettings:
        """Settings from arguments, falling back to the environment, then defaults.

        ``tls=True`` means TLS with the system's roots; ``False`` forces plaintext
        whatever the environment says.
        """
        env = os.environ
        if tls is None:
            resolved_tls = TlsConfig.from_env()
        elif isinstance(tls, bool):
            resolved_tls = TlsConfig() if tls else None
        else:
            resolved_tls = tls
        if isinstance(timeout, _Unset):
            raw = env.get("TOOLMESH_TIMEOUT")
            resolved_timeout: float | None = float(raw) if raw else DEFAULT_TIMEOUT_S
            if resolved_timeout is not None and resolved_timeout <= 0:
                resolved_timeout = None
        else:
            resolved_timeout = timeout
        return cls(
            address=address or env.get("TOOLMESH_ADDRESS") or DEFAULT_ADDRESS,
            timeout=resolved_timeout,
            max_message_bytes=max_message_bytes
            or int(env.get("TOOLMESH_MAX_MESSAGE_BYTES") or DEFAULT_MAX_MESSAGE_BYTES),
            tls=resolved_tls,
            token=token or env.get("TOOLMESH_TOKEN") or None,
        )

    def sync_channel(self) -> grpc.Channel:
        """A blocking channel to the gateway (CLI commands outside the Functions API)."""
        if self.tls is None:
            return grpc.insecure_channel(self.address)
        return grpc.secure_channel(
            self.address, self.tls.credentials(), options=self.tls.channel_options()
        )

    def auth_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()


class _Unset:
    """Marks an argument that was not passed, as distinct from ``None`` (no limit)."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "USE_CLIENT_DEFAULT"


USE_CLIENT_DEFAULT = _Unset()
