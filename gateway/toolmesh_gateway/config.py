"""Gateway settings: explicit argument, then ``TOOLMESH_*`` environment, then defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from toolmesh_gateway.endpoints import EndpointConfig
from toolmesh_gateway.limits import Limits
from toolmesh_gateway.pools import PoolSpec, load_pools
from toolmesh_gateway.tls import TlsFiles

DEFAULT_ADDRESS = "localhost:50051"
DEFAULT_TRITON_URL = "localhost:8001"
DEFAULT_MAX_MESSAGE_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_IMAGE_PIXELS = 50_000_000
REGISTRY_SOURCES = ("files", "kubernetes")
REFLECTION_MODES = ("open", "authenticated", "off")
DISCOVERY_MODES = ("static", "kubernetes")


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """Everything the gateway process needs to start."""

    address: str = DEFAULT_ADDRESS
    #: One Triton gRPC address, or several separated by commas.
    triton_url: str = DEFAULT_TRITON_URL
    #: A YAML file listing endpoints (``endpoints: [{url, models}]``); replaces ``triton_url``.
    endpoints_file: Path | None = None
    #: How Triton endpoints are found: ``static`` (``triton_url`` / ``endpoints_file``) or
    #: ``kubernetes`` (each pool's pods, from the EndpointSlices of its Service in
    #: ``namespace``, listed and watched; the pools from ``placement_file``).
    discovery: str = "static"
    #: The placement file whose ``pools:`` section names each pool's Service and models
    #: (``discovery: kubernetes``; in a cluster the ConfigMap the pools render from).
    placement_file: Path | None = None
    #: ``host:port`` for Prometheus ``/metrics`` over HTTP; None: not served.
    metrics_address: str | None = None
    #: The Function documents (``<name>.yaml``) for ``registry: files``. A setting, not a
    #: package the gateway imports: ``toolmesh up`` passes the bundled folder of
    #: ``toolmesh-models``; the image sets ``TOOLMESH_FUNCTIONS_DIR``.
    functions_dir: Path | None = None
    #: Where Functions come from: ``files`` (``functions_dir``) or ``kubernetes`` (the
    #: ``functions.toolmesh.dev`` resources of ``namespace``, listed and watched live).
    registry: str = "files"
    #: Kubernetes namespace of the Function resources; empty: the pod's own namespace
    #: (from its service account), else the kubeconfig context's, else ``default``.
    namespace: str = ""
    #: Requests larger than this are refused with RESOURCE_EXHAUSTED by gRPC itself.
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    #: Encoded images that decode to more pixels than this are refused (decompression bombs).
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    #: Deadline applied to the Triton call when the caller sent none, in seconds.
    default_timeout_s: float = 120.0
    #: How often Triton's readiness is checked for the health service, in seconds.
    health_interval_s: float = 2.0
    #: Seconds in-flight calls get to finish on SIGTERM.
    shutdown_grace_s: float = 5.0
    #: Serve TLS with these files; None: plaintext (the local default).
    tls: TlsFiles | None = None
    #: YAML file of token digests and grants; None: no authentication.
    tokens_file: Path | None = None
    #: ``host:port`` for a plaintext listener that serves only grpc.health.v1 (probes).
    health_address: str | None = None
    #: Server reflection: ``open`` (no token needed), ``authenticated`` or ``off``.
    reflection: str = "open"
    #: Bounds on concurrent Calls/ModelInfers (see :mod:`toolmesh_gateway.limits`).
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        if self.registry not in REGISTRY_SOURCES:
            raise ValueError(
                f"TOOLMESH_REGISTRY must be one of {', '.join(REGISTRY_SOURCES)}, "
                f"got {self.registry!r}"
            )
        if self.registry == "files" and self.functions_dir is None:
            raise ValueError(
                "no Function documents: set TOOLMESH_FUNCTIONS_DIR (or --functions-dir) to a "
                "folder of <name>.yaml files, or TOOLMESH_REGISTRY=kubernetes"
            )
        if self.discovery not in DISCOVERY_MODES:
            raise ValueError(
                f"TOOLMESH_DISCOVERY must be one of {', '.join(DISCOVERY_MODES)}, "
                f"got {self.discovery!r}"
            )
        if self.discovery == "kubernetes" and self.placement_file is None:
            raise ValueError(
                "TOOLMESH_DISCOVERY=kubernetes needs TOOLMESH_PLACEMENT_FILE (the placement "
                "file whose pools: section names each pool's Service and models)"
            )
        if self.reflection not in REFLECTION_MODES:
            raise ValueError(
                f"TOOLMESH_REFLECTION must be one of {', '.join(REFLECTION_MODES)}, "
                f"got {self.reflection!r}"
            )

    @property
    def security(self) -> str:
        """How the listener is protected, for logs and ``toolmesh up`` (never a secret)."""
        transport = self.tls.describe() if self.tls is not None else "plaintext"
        auth = "bearer tokens" if self.tokens_file is not None else "no authentication"
        return f"{transport}, {auth}"

    @classmethod
    def from_env(cls, **overrides: object) -> GatewaySettings:
        """Settings from ``TOOLMESH_*`` variables; keyword overrides that are not None win.

        Overrides may also name ``tls_cert``/``tls_key``/``tls_client_ca`` and the
        :class:`Limits` fields; the server's TLS variables are
        ``TOOLMESH_SERVER_TLS_*`` so that they never mix with a client's ``TOOLMESH_TLS_*``.
        """
        env = os.environ
        values: dict[str, object] = {
            "address": env.get("TOOLMESH_ADDRESS", DEFAULT_ADDRESS),
            "triton_url": env.get("TOOLMESH_TRITON_URL", DEFAULT_TRITON_URL),
            "endpoints_file": env.get("TOOLMESH_ENDPOINTS_FILE") or None,
            "discovery": env.get("TOOLMESH_DISCOVERY", "static"),
            "placement_file": env.get("TOOLMESH_PLACEMENT_FILE") or None,
            "metrics_address": env.get("TOOLMESH_METRICS_ADDRESS") or None,
            "functions_dir": env.get("TOOLMESH_FUNCTIONS_DIR") or None,
            "registry": env.get("TOOLMESH_REGISTRY", "files"),
            "namespace": env.get("TOOLMESH_NAMESPACE", ""),
            "max_message_bytes": int(
                env.get("TOOLMESH_MAX_MESSAGE_BYTES", DEFAULT_MAX_MESSAGE_BYTES)
            ),
            "max_image_pixels": int(env.get("TOOLMESH_MAX_IMAGE_PIXELS", DEFAULT_MAX_IMAGE_PIXELS)),
            "tokens_file": env.get("TOOLMESH_TOKENS_FILE") or None,
            "health_address": env.get("TOOLMESH_HEALTH_ADDRESS") or None,
            "reflection": env.get("TOOLMESH_REFLECTION", "open"),
            "tls_cert": env.get("TOOLMESH_SERVER_TLS_CERT") or None,
            "tls_key": env.get("TOOLMESH_SERVER_TLS_KEY") or None,
            "tls_client_ca": env.get("TOOLMESH_SERVER_TLS_CLIENT_CA") or None,
        }
        limits = {key: int(env[var]) for key, var in _LIMIT_VARIABLES.items() if env.get(var)}
        values.update({k: v for k, v in overrides.items() if v is not None})
        for key in ("functions_dir", "endpoints_file", "tokens_file", "placement_file"):
            if values.get(key) is not None:
                values[key] = Path(str(values[key]))
        values["tls"] = _tls_files(
            values.pop("tls_cert"), values.pop("tls_key"), values.pop("tls_client_ca")
        )
        limits.update({key: int(str(values.pop(key))) for key in _LIMIT_VARIABLES if key in values})
        values["limits"] = Limits(**limits)
        return cls(**values)  # type: ignore[arg-type]

    def pools(self) -> list[PoolSpec]:
        """The pools endpoint discovery watches (``discovery: kubernetes``).

        Raises:
            ValueError: No placement file is set, or its ``pools:`` section is malformed.
        """
        if self.placement_file is None:
            raise ValueError("no placement file (TOOLMESH_PLACEMENT_FILE) names the pools")
        return load_pools(self.placement_file)

    def endpoints(self) -> list[EndpointConfig]:
        """The static Triton endpoints: from ``endpoints_file`` if set, else ``triton_url``."""
        if self.endpoints_file is None:
            urls = [u.strip() for u in self.triton_url.split(",") if u.strip()]
            if not urls:
                raise ValueError("no Triton endpoint configured (TOOLMESH_TRITON_URL is empty)")
            return [EndpointConfig(url) for url in urls]
        return load_endpoints(self.endpoints_file)


_LIMIT_VARIABLES = {
    "max_in_flight": "TOOLMESH_MAX_IN_FLIGHT",
    "max_queue": "TOOLMESH_MAX_QUEUE",
    "max_per_client": "TOOLMESH_MAX_PER_CLIENT",
}


def _tls_files(cert: object, key: object, client_ca: object) -> TlsFiles | None:
    """TLS needs a certificate and its key together; a client CA alone makes no sense."""
    if cert is None and key is None:
        if client_ca is not None:
            raise ValueError("a client CA (mutual TLS) needs a server certificate and key too")
        return None
    if cert is None or key is None:
        raise ValueError("TLS needs both a certificate and its private key")
    return TlsFiles(
        Path(str(cert)), Path(str(key)), Path(str(client_ca)) if client_ca is not None else None
    )


def load_endpoints(path: Path) -> list[EndpointConfig]:
    """``endpoints: [{url: host:port, models: [name, ...]}]``; errors name the file and entry."""
    try:
        document: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read endpoints: {exc}") from exc
    entries = document.get("endpoints") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: expected a non-empty list under 'endpoints'")
    configs = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            raise ValueError(f"{path}: endpoints[{i}]: needs a 'url' (host:port)")
        unknown = set(entry) - {"url", "models"}
        if unknown:
            raise ValueError(f"{path}: endpoints[{i}]: unknown keys {sorted(unknown)}")
        models = entry.get("models")
        if models is not None and not (
            isinstance(models, list) and all(isinstance(m, str) for m in models)
        ):
            raise ValueError(f"{path}: endpoints[{i}].models: expected a list of model names")
        configs.append(
            EndpointConfig(entry["url"], frozenset(models) if models is not None else None)
        )
    return configs
