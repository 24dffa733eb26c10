"""Client settings: explicit argument, then ``TOOLMESH_*`` environment, then defaults.

Read when a client is constructed, never at import, so tests and programs can
set the environment late.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_ADDRESS = "localhost:50051"
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Where the gateway is and how long to wait for it."""

    address: str = DEFAULT_ADDRESS
    timeout: float | None = DEFAULT_TIMEOUT_S
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES

    @classmethod
    def resolve(
        cls,
        address: str | None = None,
        timeout: float | _Unset | None = None,
        max_message_bytes: int | None = None,
    ) -> ClientSettings:
        """Settings from arguments, falling back to the environment, then defaults."""
        env = os.environ
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
        )


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
