"""Render a runnable Triton model repository for this machine.

The committed repository is machine-independent; rendering copies each model
and replaces its ``instance_group`` with the one :mod:`.placement` computes for
the machine's GPUs. Triton then loads the rendered copy.

``toolmesh up`` renders in-process; elsewhere (a Kubernetes pod's init container,
a hand-run Triton) the same rendering is a command::

    python -m toolmesh_models.repository --placement placement.yaml --gpus 0,1 --out /models

With ``--pool NAME`` only the models of that pool of the placement's ``pools:``
section are rendered, with the pool's settings. A model that calls another inside
Triton (BLS: ``exists``, ``count`` and ``verify_property`` call ``find``) says so in its
``config.pbtxt`` (the ``bls_models`` parameter), and a pool that loads it without
what it calls is refused here, before a pod starts a Triton whose model would
fail on its first request.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from .errors import PlacementError, RepositoryError
from .paths import PLACEMENT_FILE, REPOSITORY
from .placement import Placement, detect_gpus, instance_groups, load_placement

__all__ = [
    "BLS_MODELS_PARAMETER",
    "MARKER",
    "available_models",
    "bls_models",
    "check_placement",
    "read_config",
    "render_repository",
]

CONFIG = "config.pbtxt"
MARKER = ".toolmesh-rendered"
"""File that marks a folder as a rendered repository, which rendering may replace."""
BLS_MODELS_PARAMETER = "bls_models"
"""``config.pbtxt`` parameter listing (comma-separated) the models a model calls inside
Triton; they must be loaded by the same server, so a pool must load them too."""


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


def bls_models(model: str, source: Path = REPOSITORY) -> frozenset[str]:
    """The models ``model`` calls inside Triton, from its ``bls_models`` config parameter.

    Raises:
        RepositoryError: The config cannot be parsed.
    """
    config = read_config(Path(source) / model / CONFIG)
    if BLS_MODELS_PARAMETER not in config.parameters:
        return frozenset()
    value = config.parameters[BLS_MODELS_PARAMETER].string_value
    return frozenset(name.strip() for name in value.split(",") if name.strip())


def check_placement(placement: Placement, source: Path = REPOSITORY) -> None:
    """Check a placement against a repository: every name a model of it, every pool whole.

    The whole file is checked whichever pool is rendered, so a mistake in one pool
    fails every pool's rendering (and the deploy tests) rather than only that pool's
    pods at run time.

    Raises:
        PlacementError: ``models:`` or a pool names a model ``source`` lacks, or a
            pool loads a model without a model it calls inside Triton (naming both).
        RepositoryError: A config cannot be parsed, or its ``bls_models`` names a
            model ``source`` lacks.
    """
    source = Path(source)
    available = available_models(source)
    unknown = sorted(set(placement.models) - set(available))
    if unknown:
        raise PlacementError(
            f"{placement.source}: models {unknown} are not in {source} (it has {available})"
        )
    for pool in placement.pools.values():
        unknown = sorted(set(pool.models) - set(available))
        if unknown:
            raise PlacementError(
                f"{placement.source}: pools.{pool.name}.models: {unknown} are not models "
                f"of {source} (it has {available})"
            )
    # only pools are checked for colocation: without pools every model is rendered, and
    # a hand-picked subset (``models=``) is the caller's business
    pooled = sorted({model for pool in placement.pools.values() for model in pool.models})
    calls = {model: bls_models(model, source) for model in pooled}
    for model, called in calls.items():
        strangers = sorted(called - set(available))
        if strangers:
            raise RepositoryError(
                f"{source / model / CONFIG}: parameter {BLS_MODELS_PARAMETER!r} names "
                f"{strangers}, which are not models of {source}"
            )
    for pool in placement.pools.values():
        for model in sorted(pool.models):
            missing = sorted(calls[model] - set(pool.models))
            if missing:
                raise PlacementError(
                    f"{placement.source}: pools.{pool.name} loads {model!r} but not "
                    f"{', '.join(map(repr, missing))}, which {model!r} calls inside Triton "
                    f"(BLS; see {BLS_MODELS_PARAMETER!r} in its config.pbtxt): add "
                    f"{', '.join(missing)} to pools.{pool.name}.models"
                )


def render_repository(
    dest: Path,
    *,
    placement: Placement,
    gpus: Sequence[int],
    source: Path = REPOSITORY,
    models: Iterable[str] | None = None,
    pool: str | None = None,
) -> list[str]:
    """Write a model repository for a machine with ``gpus`` into ``dest``.

    ``dest`` is replaced as a whole (a previous rendering goes away), but only
    if it is empty, absent or itself a rendering: a folder holding anything else
    is refused rather than deleted. The new repository is built next to ``dest``
    and moved into place, so a failure leaves the previous one untouched.

    Args:
        dest: Folder to write (Triton's ``--model-repository``).
        placement: The parsed placement file, or one pool's view of it
            (:meth:`.placement.Placement.for_pool`).
        gpus: The machine's GPU indices (see :func:`.placement.detect_gpus`).
        source: The repository to copy from.
        models: Names of the models to include; None for all of ``source`` (or,
            for a pool, all of the pool's).
        pool: Render pool ``pool`` of the placement's ``pools:`` section: only its
            models, with its settings. Same as passing ``placement.for_pool(pool)``.

    Returns:
        The names of the rendered models, sorted.

    Raises:
        RepositoryError: A model is missing from ``source``, its config cannot be
            parsed or names another model, or ``dest`` is a folder that is not a
            rendering.
        PlacementError: The placement names a model ``source`` lacks, a pool lacks
            a model one of its models calls (see :func:`check_placement`), ``pool``
            is not a pool of the file, ``models`` names a model outside the pool, or
            the placement asks for a GPU the machine does not have.
    """
    dest, source = Path(dest).resolve(), Path(source).resolve()
    if pool is not None:
        placement = placement.for_pool(pool)
    check_placement(placement, source)
    available = available_models(source)
    loads = placement.loads
    if models is None:
        names = available if loads is None else sorted(loads)
    else:
        names = sorted(set(models))
        missing = [name for name in names if name not in available]
        if missing:
            raise RepositoryError(f"models {missing} are not in {source} (it has {available})")
        outside = [name for name in names if loads is not None and name not in loads]
        if outside:
            raise PlacementError(
                f"{placement.source}: models {outside} are not in pool {placement.pool!r} "
                f"(it loads {sorted(loads or ())})"
            )
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
    if not placement.for_model(src.name).batches(config.instance_group):
        config.ClearField("dynamic_batching")
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (dst / CONFIG).write_text(text_format.MessageToString(config), encoding="utf-8")


def _parse_gpus(text: str) -> list[int]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not all(p.isdigit() for p in parts):
        raise PlacementError(f"--gpus must be GPU indices like '0,1' or empty, got {text!r}")
    return sorted({int(p) for p in parts})


def main(argv: list[str] | None = None) -> int:
    """Render a repository from the command line; exit status 2 on a placement or model error."""
    parser = argparse.ArgumentParser(
        prog="python -m toolmesh_models.repository",
        description="Write a Triton model repository with instance groups from a placement file.",
    )
    parser.add_argument("--out", type=Path, required=True, help="folder to write (replaced)")
    parser.add_argument("--placement", type=Path, default=PLACEMENT_FILE, help="placement file")
    parser.add_argument(
        "--gpus", help="GPU indices, e.g. '0,1', or '' for none (default: detected)"
    )
    parser.add_argument("--source", type=Path, default=REPOSITORY, help="repository to copy")
    parser.add_argument("--models", help="comma-separated model names (default: all)")
    parser.add_argument(
        "--pool",
        help="render only this pool's models, with its settings (the placement's pools: "
        "section); default: every model",
    )
    args = parser.parse_args(argv)
    try:
        gpus = detect_gpus() if args.gpus is None else _parse_gpus(args.gpus)
        names = render_repository(
            args.out,
            placement=load_placement(args.placement),
            gpus=gpus,
            source=args.source,
            models=None if args.models is None else args.models.split(","),
            pool=args.pool,
        )
    except (PlacementError, RepositoryError) as exc:
        print(f"toolmesh_models.repository: {exc}", file=sys.stderr)
        return 2
    where = f"GPU(s) {', '.join(map(str, gpus))}" if gpus else "no GPU (KIND_CPU)"
    pool = f" (pool {args.pool})" if args.pool else ""
    print(f"rendered {', '.join(names)}{pool} into {args.out} for {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
