"""The ``toolmesh`` command line.

The client's commands (``ls``, ``describe``, ``call``, ``status``, ``run``,
``report``) live here; ``toolmesh-local`` and ``toolmesh-codegen`` add theirs
through ``toolmesh.cli`` entry points (see :mod:`toolmesh._extensions`).
"""

from toolmesh.cli import _batch, _calls  # noqa: F401  (their commands register on ``app``)
from toolmesh.cli._plugins import register_plugins
from toolmesh.cli.common import app

__all__ = ["app", "main"]

register_plugins(app)


def main() -> None:
    """The console script: tracing from the environment, then the command."""
    from toolmesh.tracing import configure_tracing

    configure_tracing("toolmesh")
    app()
