"""toolmesh-local: the whole mesh on one machine, above every other part.

It starts Triton (``toolmesh_models``), an OTLP receiver and a gateway process
(``toolmesh_gateway``), runs the paper's in-process baseline with the gateway's
own call pipeline, and adds ``up``/``down``/``demo``/``trace``/``models``/``token``
to the ``toolmesh`` CLI. Nothing below imports it.
"""

from toolmesh_local.mesh import LocalMesh, stop_detached, wait_for_health

__all__ = ["LocalMesh", "stop_detached", "wait_for_health"]
