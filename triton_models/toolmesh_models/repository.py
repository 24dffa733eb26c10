"""Render a runnable Triton model repository for this machine.

The committed repository is machine-independent; rendering copies each model
and replaces its ``instance_group`` with the one :mod:`.placement` computes for
the machine's GPUs. Triton then loads the rendered copy.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from .errors import PlacementError, RepositoryError
from .paths import REPOSITORY
from .placement import Placement, instance_groups

__all__ = ["MARKER", "available_models", "read_config", "render_repository"]

CONFIG = "config.pbtxt"
MARKER = ".toolmesh-rendered"
"""File that marks a folder as a rendered repository, which rendering may replace."""


def available_models(source: Path = REPOSITORY) -> list[str]:
    """Return the names of the models in ``source`` (folders holding a config.pbtxt)."""
    return sorted(p.parent.name for p in Path(source).glob(f"*/{CONFIG}"))


def read_config(path: Path) -> model_config_pb2.ModelConfig:
    """Parse a ``config.pbtxt``.

    Raises:
        RepositoryError: The file cannot be read or parsed; the message names it.
    """
    try:
        return text_format.Parse(path.read_text(encoding="utf-8"), model_config_pb2.ModelConfig())
    except (OSError, text_format.ParseError) as exc:
        raise RepositoryError(f"{path}: cannot parse the model configuration: {exc}") from exc


def render_repository(
    dest: Path,
    *,
    placement: Placement,
    gpus: Sequence[int],
    source: Path = REPOSITORY,
    models: Iterable[str] | None = None,
) -> list[str]:
    """Write a model repository for a machine with ``gpus`` into ``dest``.

    ``dest`` is replaced as a whole (a previous rendering goes away), but only
    if it is empty, absent or itself a rendering: a folder holding anything else
    is refused rather than deleted. The new repository is built next to ``dest``
    and moved into place, so a failure leaves the previous one untouched.

    Args:
        dest: Folder to write (Triton's ``--model-repository``).
        placement: The parsed placement file.
        gpus: The machine's GPU indices (see :func:`.placement.detect_gpus`).
        source: The repository to copy from.
        models: Names of the models to include; None for all of ``source``.

    Returns:
        The names of the rendered models, sorted.

    Raises:
        RepositoryError: A model is missing from ``source``, its config cannot be
            parsed or names another model, or ``dest`` is a folder that is not a
            rendering.
        PlacementError: The placement names a model ``source`` lacks, or asks for
            a GPU the machine does not have.
    """
    dest, source = Path(dest).resolve(), Path(source).resolve()
    available = available_models(source)
    unknown = sorted(set(placement.models) - set(available))
    if unknown:
        raise PlacementError(
            f"{placement.source}: models {unknown} are not in {source} (it has {available})"
        )
    names = available if models is None else sorted(set(models))
    missing = [name for name in names if name not in available]
    if missing:
        raise RepositoryError(f"models {missing} are not in {source} (it has {available})")
    if dest == source or source in dest.parents:
        raise RepositoryError(f"refusing to render into {dest}: it is inside the source {source}")
    if dest.exists() and any(dest.iterdir()) and not (dest / MARKER).exists():
        raise RepositoryError(
            f"refusing to replace {dest}: it is not empty and is not a "
            f"rendered repository (no {MARKER} file)"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would hide the models from a server run as another user
    try:
        for name in names:
            _render_model(source / name, staging / name, placement, gpus)
        (staging / MARKER).write_text(
            "rendered by toolmesh_models.repository; replaced on every rendering\n",
            encoding="utf-8",
        )
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return names


def _render_model(src: Path, dst: Path, placement: Placement, gpus: Sequence[int]) -> None:
    config_path = src / CONFIG
    config = read_config(config_path)
    if config.name and config.name != src.name:
        raise RepositoryError(
            f"{config_path}: name {config.name!r} differs from its "
            f"folder {src.name!r} (Triton requires them equal)"
        )
    del config.instance_group[:]
    config.instance_group.extend(instance_groups(placement, src.name, gpus))
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (dst / CONFIG).write_text(text_format.MessageToString(config), encoding="utf-8")
