"""Gateway settings: explicit argument, then ``TOOLMESH_*`` environment, then defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from toolmesh_gateway.endpoints import EndpointConfig
from toolmesh_models.paths import FUNCTIONS_DIR

DEFAULT_ADDRESS = "localhost:50051"
DEFAULT_TRITON_URL = "localhost:8001"
DEFAULT_MAX_MESSAGE_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_IMAGE_PIXELS = 50_000_000
REGISTRY_SOURCES = ("files", "kubernetes")


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """Everything the gateway process needs to start."""

    address: str = DEFAULT_ADDRESS
    #: One Triton gRPC address, or several separated by commas.
    triton_url: str = DEFAULT_TRITON_URL
    #: A YAML file listing endpoints (``endpoints: [{url, models}]``); replaces ``triton_url``.
    endpoints_file: Path | None = None
    #: ``host:port`` for Prometheus ``/metrics`` over HTTP; None: not served.
    metrics_address: str | None = None
    functions_dir: Path = FUNCTIONS_DIR
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

    def __post_init__(self) -> None:
        if self.registry not in REGISTRY_SOURCES:
            raise ValueError(
                f"TOOLMESH_REGISTRY must be one of {', '.join(REGISTRY_SOURCES)}, "
                f"got {self.registry!r}"
            )

    @classmethod
    def from_env(cls, **overrides: object) -> GatewaySettings:
        """Settings from ``TOOLMESH_*`` variables; keyword overrides that are not None win."""
        env = os.environ
        values: dict[str, object] = {
            "address": env.get("TOOLMESH_ADDRESS", DEFAULT_ADDRESS),
            "triton_url": env.get("TOOLMESH_TRITON_URL", DEFAULT_TRITON_URL),
            "endpoints_file": env.get("TOOLMESH_ENDPOINTS_FILE") or None,
            "metrics_address": env.get("TOOLMESH_METRICS_ADDRESS") or None,
            "functions_dir": Path(env.get("TOOLMESH_FUNCTIONS_DIR", str(FUNCTIONS_DIR))),
            "registry": env.get("TOOLMESH_REGISTRY", "files"),
            "namespace": env.get("TOOLMESH_NAMESPACE", ""),
            "max_message_bytes": int(
                env.get("TOOLMESH_MAX_MESSAGE_BYTES", DEFAULT_MAX_MESSAGE_BYTES)
            ),
            "max_image_pixels": int(env.get("TOOLMESH_MAX_IMAGE_PIXELS", DEFAULT_MAX_IMAGE_PIXELS)),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        for key in ("functions_dir", "endpoints_file"):
            if values.get(key) is not None:
                values[key] = Path(str(values[key]))
        return cls(**values)  # type: ignore[arg-type]

    def endpoints(self) -> list[EndpointConfig]:
        """The Triton endpoints: from ``endpoints_file`` if set, else ``triton_url``."""
        if self.endpoints_file is None:
            urls = [u.strip() for u in self.triton_url.split(",") if u.strip()]
            if not urls:
                raise ValueError("no Triton endpoint configured (TOOLMESH_TRITON_URL is empty)")
            return [EndpointConfig(url) for url in urls]
        return load_endpoints(self.endpoints_file)


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
