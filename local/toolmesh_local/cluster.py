"""A Triton pool in a cluster, rehearsed on one machine: pods, their EndpointSlices, the API.

What the gateway does in Kubernetes (find each pod of a pool, balance over them,
drain the terminating ones, survive one dying) can be exercised without a cluster:

- each pod is a real ``tritonserver`` in its own network namespace
  (:mod:`toolmesh_local.netns`), listening on the pod ports every pod has
  (8000/8001/8002) at its own address;
- the API server is :class:`~toolmesh_local.kube_api.FakeKubernetesAPI`, and this
  class plays the EndpointSlice controller: :meth:`RehearsalPool.publish` writes the
  pool Service's slices with each pod's conditions, as the controller would after a
  scale-up, a termination or a failed readiness probe;
- the gateway is configured exactly as in a cluster (``TOOLMESH_DISCOVERY=kubernetes``,
  a placement file with a ``pools:`` section, a kubeconfig): :meth:`environment`.

The rehearsal test (``tests/cluster``) and ``perf/scaling.py`` drive it.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from toolmesh_local._managed import Managed
from toolmesh_local.kube_api import FakeKubernetesAPI, kubeconfig
from toolmesh_local.netns import Network, Node
from toolmesh_local.triton import TritonPorts, TritonServer
from toolmesh_models.placement import load_placement
from toolmesh_models.repository import render_repository

__all__ = ["POD_PORTS", "PodState", "RehearsalPod", "RehearsalPool"]

#: The container ports of every Triton pod (deploy/triton-pool/deployment.yaml).
POD_PORTS = TritonPorts(grpc=8001, http=8000, metrics=8002)
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

#: A pod's conditions in its EndpointSlice, by the state the controller reports.
PodState = str  # "ready" | "terminating" | "not-ready"
_CONDITIONS: Mapping[PodState, Mapping[str, bool]] = {
    "ready": {"ready": True, "serving": True, "terminating": False},
    "terminating": {"ready": False, "serving": True, "terminating": True},
    "not-ready": {"ready": False, "serving": False, "terminating": False},
}


@dataclass
class RehearsalPod:
    """One Triton pod: a namespace and the server in it."""

    name: str
    node: Node
    triton: TritonServer

    @property
    def address(self) -> str:
        return self.node.address

    @property
    def url(self) -> str:
        return self.triton.grpc_url


class RehearsalPool(Managed):
    """``pods`` Triton pods of one pool, their Service's slices, and the API serving them.

    Args:
        run_dir: Where the repository, logs, placement file and kubeconfig go.
        pods: How many pods (network namespaces, each running Triton).
        models: The models the pool loads (one CPU instance each: pods share the cores).
        pool: The pool's name; its Service is ``triton-<pool>``.
        namespace: The Kubernetes namespace the stand-in API serves.
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        pods: int = 3,
        models: tuple[str, ...] = ("find",),
        pool: str = "cpu",
        namespace: str = "toolmesh",
    ) -> None:
        self.run_dir = run_dir
        self.models = models
        self.pool = pool
        self.service = f"triton-{pool}"
        self.namespace = namespace
        self.network = Network(pods)
        self.api = FakeKubernetesAPI(namespace)
        self.pods: list[RehearsalPod] = []
        self.placement_file = run_dir / "placement.yaml"
        self.kubeconfig_file = run_dir / "kubeconfig"

    # ---- life cycle ----------------------------------------------------------------------

    def start(self, timeout: float = 180.0) -> RehearsalPool:
        """Create the hosts, render the pool's repository, start every pod's Triton."""
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.network.start()
            self.api.start()
            # one file, as in a cluster: the pool renders from it, the gateway reads its pools
            placement = {
                "defaults": {"kind": "cpu", "count": 1},
                "pools": {
                    self.pool: {"service": self.service, "models": {m: {} for m in self.models}}
                },
            }
            self.placement_file.write_text(yaml.safe_dump(placement), encoding="utf-8")
            repository = self.run_dir / "repository"
            render_repository(
                repository,
                placement=load_placement(self.placement_file).for_pool(self.pool),
                gpus=[],
            )
            self.kubeconfig_file.write_text(kubeconfig(self.api, self.namespace), encoding="utf-8")
            for i, node in enumerate(self.network.nodes):
                triton = TritonServer(
                    repository,
                    self.run_dir / f"pod-{i}",
                    ports=POD_PORTS,
                    host=node.address,
                    prefix=node.prefix,
                )
                self.pods.append(RehearsalPod(f"{self.service}-pod-{i}", node, triton))
            with concurrent.futures.ThreadPoolExecutor(len(self.pods)) as starting:
                for started in [starting.submit(p.triton.start, timeout) for p in self.pods]:
                    started.result()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for pod in self.pods:
            pod.triton.stop()
        self.api.stop()
        self.network.stop()

    # ---- what the gateway is given -------------------------------------------------------

    def environment(self, functions_dir: Path) -> dict[str, str]:
        """A gateway's environment in this "cluster": discovery, pools, API credentials."""
        return {
            "KUBECONFIG": str(self.kubeconfig_file),
            "TOOLMESH_DISCOVERY": "kubernetes",
            "TOOLMESH_PLACEMENT_FILE": str(self.placement_file),
            "TOOLMESH_NAMESPACE": self.namespace,
            "TOOLMESH_REGISTRY": "files",
            "TOOLMESH_FUNCTIONS_DIR": str(functions_dir),
        }

    def functions_dir(self, source: Path) -> Path:
        """A folder with the Function documents of this pool's models only."""
        target = Path(tempfile.mkdtemp(prefix="functions-", dir=self.run_dir))
        for model in self.models:
            document = source / f"{model}.yaml"
            (target / document.name).write_bytes(document.read_bytes())
        return target

    # ---- playing the EndpointSlice controller and the kubelet ----------------------------

    def slice_document(self, states: Mapping[str, PodState], name: str = "a") -> dict[str, Any]:
        """An EndpointSlice of the pool's Service listing ``states`` (pod name → state)."""
        by_name = {p.name: p for p in self.pods}
        endpoints = []
        for pod_name, state in states.items():
            pod = by_name[pod_name]
            endpoints.append(
                {
                    "addresses": [pod.address],
                    "conditions": dict(_CONDITIONS[state]),
                    "targetRef": {"kind": "Pod", "name": pod.name, "namespace": self.namespace},
                    "nodeName": pod.node.name,
                }
            )
        return {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{self.service}-{name}",
                "labels": {
                    SERVICE_NAME_LABEL: self.service,
                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                },
            },
            "addressType": "IPv4",
            "ports": [
                {"name": "grpc", "port": POD_PORTS.grpc, "protocol": "TCP", "appProtocol": "grpc"},
                {"name": "http", "port": POD_PORTS.http, "protocol": "TCP"},
            ],
            "endpoints": endpoints,
        }

    def publish(self, states: Mapping[str, PodState], name: str = "a") -> int:
        """Write one slice of the Service; returns its resourceVersion."""
        return self.api.apply(self.slice_document(states, name))

    def delete_slice(self, name: str = "a") -> None:
        self.api.delete(f"{self.service}-{name}", kind="EndpointSlice")

    def kill(self, pod: RehearsalPod) -> None:
        """SIGKILL the pod's Triton, as an OOM kill or a node failure would."""
        process = pod.triton.process
        if process is not None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)

    def successes(self, pod: RehearsalPod, model: str | None = None) -> int:
        """Requests the pod's Triton answered, from its own statistics."""
        return pod.triton.successes(model or self.models[0])
