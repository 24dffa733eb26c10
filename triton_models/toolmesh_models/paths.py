"""Where the Triton model folder's parts live.

Everything is located relative to this package's folder, which sits inside
``triton_models/`` (the package is installed editable from there), so the
repository, the Function documents and the weights travel together.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["FUNCTIONS_DIR", "PLACEMENT_FILE", "REPOSITORY", "ROOT", "weights_dir"]

ROOT: Path = Path(__file__).resolve().parent.parent
"""The ``triton_models`` folder."""

REPOSITORY: Path = ROOT / "repository"
"""The committed model repository (configs carry everything but placement)."""

FUNCTIONS_DIR: Path = ROOT / "functions"
"""The Function documents (``<name>.yaml``) the gateway serves."""

PLACEMENT_FILE: Path = ROOT / "placement.yaml"
"""Which model runs where; see the comment at the top of the file."""

WEIGHTS_ENV = "TOOLMESH_WEIGHTS_DIR"


def weights_dir() -> Path:
    """Return the folder that holds model weights.

    ``TOOLMESH_WEIGHTS_DIR`` overrides ``ROOT/"weights"``. It is read on every call,
    not at import, so a Triton model instance sees the environment it was started
    with and tests can point it elsewhere without reloading the module.
    """
    override = os.environ.get(WEIGHTS_ENV)
    return Path(override) if override else ROOT / "weights"
