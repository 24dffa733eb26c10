"""Gateway settings: explicit argument, then ``TOOLMESH_*`` environment, then defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from toolmesh_models.paths import FUNCTIONS_DIR

DEFAULT_ADDRESS = "localhost:50051"
DEFAULT_TRITON_URL = "localhost:8001"
DEFAULT_MAX_MESSAGE_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_IMAGE_PIXELS = 50_000_000


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """Everything the gateway process needs to start."""

    address: str = DEFAULT_ADDRESS
    triton_url: str = DEFAULT_TRITON_URL
    functions_dir: Path = FUNCTIONS_DIR
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

    @classmethod
    def from_env(cls, **overrides: object) -> GatewaySettings:
        """Settings from ``TOOLMESH_*`` variables; keyword overrides that are not None win."""
        env = os.environ
        values: dict[str, object] = {
            "address": env.get("TOOLMESH_ADDRESS", DEFAULT_ADDRESS),
            "triton_url": env.get("TOOLMESH_TRITON_URL", DEFAULT_TRITON_URL),
            "functions_dir": Path(env.get("TOOLMESH_FUNCTIONS_DIR", str(FUNCTIONS_DIR))),
            "max_message_bytes": int(
                env.get("TOOLMESH_MAX_MESSAGE_BYTES", DEFAULT_MAX_MESSAGE_BYTES)
            ),
            "max_image_pixels": int(env.get("TOOLMESH_MAX_IMAGE_PIXELS", DEFAULT_MAX_IMAGE_PIXELS)),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "functions_dir" in values:
            values["functions_dir"] = Path(str(values["functions_dir"]))
        return cls(**values)  # type: ignore[arg-type]
