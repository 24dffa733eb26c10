"""Where a local mesh leaves its address: the state file ``toolmesh up --detach`` writes.

It is part of the client because the client reads it (``toolmesh status`` finds a
local mesh's address there); ``toolmesh-local`` writes it. Keeping the format here
lets the two agree without the client importing the orchestration.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["STATE_FILE", "MeshState", "default_run_dir"]

STATE_FILE = "state.json"


def default_run_dir() -> Path:
    """``TOOLMESH_HOME`` or ``~/.cache/toolmesh``: rendered repository, logs, state file."""
    home = os.environ.get("TOOLMESH_HOME")
    return Path(home) if home else Path.home() / ".cache" / "toolmesh"


@dataclass
class MeshState:
    """What ``toolmesh up --detach`` leaves for ``status`` and ``down``."""

    address: str
    triton_urls: list[str]
    triton_pids: list[int]
    gateway_pid: int
    run_dir: str
    gpus: list[int] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    metrics_url: str = ""
    receiver_pid: int = 0
    trace_log: str = ""

    def save(self, run_dir: Path) -> Path:
        path = run_dir / STATE_FILE
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def load(cls, run_dir: Path) -> MeshState | None:
        path = run_dir / STATE_FILE
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))
