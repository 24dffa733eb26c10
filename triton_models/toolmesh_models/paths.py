"""Where the model repository's parts live: package data of ``toolmesh_models``.

The repository, the Function documents, the bundled weights and the placement
file are installed with the package (editable or from the wheel), so a
``toolmesh up`` from an installed wheel finds them exactly where a checkout does.
``importlib.resources`` locates them; Triton needs real folders, so a package
imported from a zip file is refused rather than silently extracted.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

__all__ = ["FUNCTIONS_DIR", "PLACEMENT_FILE", "REPOSITORY", "ROOT", "weights_dir"]


def _package_folder() -> Path:
    folder = resources.files("toolmesh_models")
    if not isinstance(folder, Path):  # a zipimport Traversable: Triton cannot read it
        raise RuntimeError("toolmesh_models must be installed as files, not imported from a zip")
    return folder


ROOT: Path = _package_folder()
"""The installed ``toolmesh_models`` package folder (its data lives beside the code)."""

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
