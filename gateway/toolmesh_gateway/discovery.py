"""Per-pod routing in a cluster: each pool's pods from its Service's EndpointSlices.

Through a ClusterIP Service, gRPC's one long-lived HTTP/2 connection pins every
call of a gateway replica to one pod, however many the pool has; scaling a pool
then adds pods that receive nothing. So the gateway does what a service mesh's
sidecar would: it lists and watches the ``discovery.k8s.io/v1`` EndpointSlices of
each pool's Service (label ``kubernetes.io/service-name``), keeps one connection
per pod, and balances calls over them itself (least outstanding requests, with
ejection and retry, in :mod:`~toolmesh_gateway.endpoints`).

An endpoint's conditions decide its part, as the EndpointSlice API defines them:
``ready`` (unset means ready) and not ``terminating`` takes calls; ``terminating``
(even while still ``serving``) or not ready takes no new call and is drained; one
gone from every slice of its Service is drained and then closed. A pod may appear
in two slices while the controller moves it; it is ready if any says so.

The watch runs in threads (:class:`~toolmesh_gateway.listwatch.ListWatch`); every
change is handed to the event loop, where the pool is changed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from kubernetes import client

from toolmesh_gateway.endpoints import EndpointPool, Target
from toolmesh_gateway.kube import api_client_from_environment, default_namespace
from toolmesh_gateway.listwatch import ListWatch, describe_error
from toolmesh_gateway.pools import PoolSpec

__all__ = ["SERVICE_NAME_LABEL", "EndpointDiscoveryError", "KubernetesEndpoints", "slice_targets"]

log = logging.getLogger(__name__)

#: The label the EndpointSlice controller puts on each slice: its Service's name.
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class EndpointDiscoveryError(ConnectionError):
    """A pool's EndpointSlices could not be listed when the gateway started."""


def slice_targets(item: Mapping[str, Any], port_name: str) -> dict[str, Target]:
    """The endpoints of one EndpointSlice as ``host:port`` → :class:`Target`.

    A slice without a port named ``port_name`` has no endpoint the gateway can
    call (it is logged); endpoints without an address are skipped.
    """
    ports = [p for p in item.get("ports") or [] if isinstance(p, Mapping)]
    port = next((p.get("port") for p in ports if p.get("name") == port_name), None)
    if not isinstance(port, int):
        name = (item.get("metadata") or {}).get("name", "?")
        log.warning("EndpointSlice %s has no port named %r; ignoring it", name, port_name)
        return {}
    ipv6 = item.get("addressType") == "IPv6"
    targets: dict[str, Target] = {}
    for endpoint in item.get("endpoints") or []:
        addresses = endpoint.get("addresses") if isinstance(endpoint, Mapping) else None
        if not addresses:
            continue
        conditions = endpoint.get("conditions") or {}
        terminating = conditions.get("terminating") is True
        ready = conditions.get("ready") is not False and not terminating
        ref = endpoint.get("targetRef") or {}
        pod = str(ref.get("name", "")) if ref.get("kind", "Pod") == "Pod" else ""
        host = f"[{addresses[0]}]" if ipv6 else str(addresses[0])
        targets[f"{host}:{port}"] = Target(pod=pod, ready=ready)
    return targets


class _PoolWatch:
    """The slices of one pool's Service, merged into the pool's endpoints."""

    def __init__(self, spec: PoolSpec, publish: Any) -> None:
        self.spec = spec
        self._publish = publish
        self._slices: dict[str, dict[str, Target]] = {}

    def replace_all(self, items: list[Mapping[str, Any]]) -> None:
        self._slices = {_name(i): slice_targets(i, self.spec.port_name) for i in items}
        self._changed()

    def apply(self, kind: str, item: Mapping[str, Any]) -> None:
        if kind == "DELETED":
            self._slices.pop(_name(item), None)
        else:
            self._slices[_name(item)] = slice_targets(item, self.spec.port_name)
        self._changed()

    def _changed(self) -> None:
        merged: dict[str, Target] = {}
        for targets in self._slices.values():
            for url, target in targets.items():
                if url not in merged or target.ready:
                    merged[url] = target
        self._publish(self.spec.name, merged)


class KubernetesEndpoints:
    """Keeps an :class:`EndpointPool` equal to the pods of each pool's Service.

    ``start()`` lists every pool's slices (raising :class:`EndpointDiscoveryError`
    if one cannot be listed: a gateway that cannot see its pools should not start)
    and then watches them until ``aclose()``.

    Args:
        pool: The pool to keep in step (made with :meth:`EndpointPool.for_pools`).
        pools: Each pool's Service and port name.
        namespace: Where the Services live; empty: :func:`~toolmesh_gateway.kube.default_namespace`.
        api_client: The client to use; default: configured as ``kubectl`` would be.
    """

    def __init__(
        self,
        pool: EndpointPool,
        pools: Sequence[PoolSpec],
        namespace: str = "",
        *,
        api_client: client.ApiClient | None = None,
        watch_timeout_s: int = 300,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.pool = pool
        self.specs = list(pools)
        self.namespace = namespace or default_namespace()
        self._api_client = api_client
        self._owns_client = api_client is None
        self._watch_timeout_s = watch_timeout_s
        self._max_backoff_s = max_backoff_s
        self._watches: list[ListWatch] = []

    @property
    def watching(self) -> bool:
        return bool(self._watches) and all(w.watching for w in self._watches)

    async def start(self) -> None:
        if self._watches:
            raise RuntimeError("KubernetesEndpoints can be started once")
        loop = asyncio.get_running_loop()

        def publish(pool: str, targets: dict[str, Target]) -> None:
            loop.call_soon_threadsafe(self.pool.reconcile, pool, targets)

        try:
            if self._api_client is None:
                self._api_client = api_client_from_environment()
            api = client.DiscoveryV1Api(self._api_client)
        except Exception as exc:  # kubeconfig errors
            raise EndpointDiscoveryError(f"cannot reach the Kubernetes API: {exc}") from exc
        for spec in self.specs:
            state = _PoolWatch(spec, publish)
            watch = ListWatch(
                f"endpointslices of service {spec.service} in {self.namespace}",
                api.list_namespaced_endpoint_slice,
                (self.namespace,),
                on_list=state.replace_all,
                on_event=state.apply,
                label_selector=f"{SERVICE_NAME_LABEL}={spec.service}",
                watch_timeout_s=self._watch_timeout_s,
                max_backoff_s=self._max_backoff_s,
            )
            try:
                await asyncio.to_thread(watch.list)
            except Exception as exc:  # ApiException, urllib3 errors
                await self.aclose()
                raise EndpointDiscoveryError(
                    f"cannot list the EndpointSlices of pool {spec.name!r} (service "
                    f"{spec.service!r} in namespace {self.namespace!r}): {describe_error(exc)}"
                ) from exc
            self._watches.append(watch)
        for watch in self._watches:
            watch.start()
        log.info(
            "discovering Triton pods of %s in namespace %s",
            ", ".join(f"pool {s.name} (service {s.service})" for s in self.specs),
            self.namespace,
        )

    async def aclose(self) -> None:
        for watch in self._watches:
            await watch.aclose()
        if self._owns_client and self._api_client is not None:
            await asyncio.to_thread(self._api_client.close)
            self._api_client = None


def _name(item: Mapping[str, Any]) -> str:
    metadata = item.get("metadata")
    return str(metadata.get("name", "")) if isinstance(metadata, Mapping) else ""
