"""The ``toolmesh`` command line: run a local mesh, list and call functions."""

from toolmesh.cli._app import app, main

__all__ = ["app", "main"]
