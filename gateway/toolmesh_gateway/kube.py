"""Functions from the Kubernetes API: ``functions.toolmesh.dev`` resources, listed and watched.

In a cluster the gateway's registry is the set of ``kind: Function`` resources
of one namespace (the very YAML files of ``triton_models/toolmesh_models/functions``, applied by
``kubectl apply -k deploy/...``). :class:`KubernetesFunctions` lists them, then
watches from the list's ``resourceVersion`` in a background thread
(:class:`~toolmesh_gateway.listwatch.ListWatch`), and replaces the :class:`~toolmesh_gateway.registry.RegistryHolder`
the servicers read after every change, so an added, changed or deleted Function is
what ``ListFunctions``, ``GetFunction`` and ``Call`` see next.

- A Function that fails the gateway's checks (``parse_function_resource``) is
  logged and ignored: the last good version of it, if any, keeps serving, and so
  does everything else.
- A watch that ends resumes; one that expired (``410 Gone``) or failed is followed
  by a fresh list (``listwatch``).
- Only the first list is allowed to fail loudly (:class:`FunctionWatchError`): a
  gateway that cannot read its Functions at start should not start.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubernetes import client, config

from toolmesh_gateway.listwatch import ListWatch, describe_error
from toolmesh_gateway.registry import (
    FunctionDocumentError,
    FunctionSpec,
    Registry,
    RegistryHolder,
    parse_function_resource,
)

__all__ = [
    "GROUP",
    "PLURAL",
    "VERSION",
    "FunctionWatchError",
    "KubernetesFunctions",
    "api_client_from_environment",
    "default_namespace",
]

log = logging.getLogger(__name__)

GROUP = "toolmesh.dev"
VERSION = "v1"
PLURAL = "functions"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class FunctionWatchError(ConnectionError):
    """The Function resources could not be listed when the gateway started."""


def api_client_from_environment() -> client.ApiClient:
    """An API client configured as ``kubectl`` would be: in-cluster, else from kubeconfig.

    In a pod (``KUBERNETES_SERVICE_HOST`` set) the service account's token and CA
    are used; elsewhere ``KUBECONFIG`` (read now, not at import) or ``~/.kube/config``.
    """
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
        return client.ApiClient(configuration)
    return config.new_client_from_config(config_file=os.environ.get("KUBECONFIG") or None)


def default_namespace() -> str:
    """The pod's namespace (service account), else the kubeconfig context's, else ``default``."""
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip()
    except OSError:
        pass
    try:
        _, active = config.list_kube_config_contexts(
            config_file=os.environ.get("KUBECONFIG") or None
        )
        namespace = active.get("context", {}).get("namespace")
    except Exception:  # no kubeconfig, or one without a current context
        namespace = None
    return str(namespace) if namespace else "default"


class KubernetesFunctions:
    """Keeps a registry equal to the Function resources of one namespace.

    ``start()`` lists them (raising :class:`FunctionWatchError` if it cannot) and
    returns the holder the servicers read; a daemon thread then watches for
    changes until ``aclose()``. One instance watches once; it is not restartable.

    Args:
        namespace: Where the Functions live; empty: :func:`default_namespace`.
        api_client: The client to use; default :func:`api_client_from_environment`.
        watch_timeout_s: Asks the API server to end each watch after this long (it
            is then resumed), so a silently dead connection cannot last forever.
        max_backoff_s: Longest wait between attempts after failures.
    """

    def __init__(
        self,
        namespace: str = "",
        *,
        api_client: client.ApiClient | None = None,
        watch_timeout_s: int = 300,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.namespace = namespace or default_namespace()
        self._api_client = api_client
        self._owns_client = api_client is None  # close only a client made here
        self._watch_timeout_s = watch_timeout_s
        self._max_backoff_s = max_backoff_s
        self._holder: RegistryHolder | None = None
        self._specs: dict[str, FunctionSpec] = {}  # by resource name: the last good version
        self._loop: ListWatch | None = None

    @property
    def holder(self) -> RegistryHolder:
        if self._holder is None:
            raise RuntimeError("KubernetesFunctions.start() has not run")
        return self._holder

    @property
    def resource_version(self) -> str | None:
        return self._loop.resource_version if self._loop is not None else None

    @property
    def watching(self) -> bool:
        return self._loop is not None and self._loop.watching

    async def start(self) -> RegistryHolder:
        """List the Functions, start watching, and return the live registry.

        Raises:
            FunctionWatchError: The API server could not be reached or refused
                the list (e.g. RBAC, or the CRD is not installed).
        """
        if self._loop is not None:
            raise RuntimeError("KubernetesFunctions can be started once")
        self._holder = RegistryHolder(Registry(()))
        try:
            if self._api_client is None:
                self._api_client = api_client_from_environment()
            api = client.CustomObjectsApi(self._api_client)
            self._loop = ListWatch(
                f"{PLURAL}.{GROUP} in {self.namespace}",
                api.list_namespaced_custom_object,
                (GROUP, VERSION, self.namespace, PLURAL),
                on_list=self._replace_all,
                on_event=self._apply,
                watch_timeout_s=self._watch_timeout_s,
                max_backoff_s=self._max_backoff_s,
            )
            await asyncio.to_thread(self._loop.list)
        except Exception as exc:  # ApiException, urllib3 and kubeconfig errors: not OSErrors
            raise FunctionWatchError(
                f"cannot list {PLURAL}.{GROUP} in namespace {self.namespace!r}: "
                f"{describe_error(exc)}"
            ) from exc
        self._loop.start()
        return self.holder

    async def aclose(self) -> None:
        """Stop watching; the registry keeps its last state."""
        if self._loop is not None:
            await self._loop.aclose()
        if self._owns_client and self._api_client is not None:
            await asyncio.to_thread(self._api_client.close)

    # ---- in the watch thread -----------------------------------------------------------

    def _replace_all(self, items: list[Mapping[str, Any]]) -> None:
        """A fresh list replaces the whole state; malformed items keep their last good version."""
        specs: dict[str, FunctionSpec] = {}
        for item in items:
            name = _resource_name(item)
            spec = self._parse(item, "listed")
            if spec is not None:
                specs[name] = spec
            elif name in self._specs:
                specs[name] = self._specs[name]
        self._specs = specs
        self._publish()
        log.info(
            "%d Function(s) in namespace %s (resourceVersion %s): %s",
            len(specs),
            self.namespace,
            self.resource_version,
            ", ".join(sorted(s.name for s in specs.values())) or "(none)",
        )

    def _apply(self, kind: str, item: Mapping[str, Any]) -> None:
        name = _resource_name(item)
        if kind == "DELETED":
            if self._specs.pop(name, None) is not None:
                self._publish()
                log.info("Function %s deleted", name)
            return
        spec = self._parse(item, kind.lower())
        if spec is None:
            return
        self._specs[name] = spec
        self._publish()
        log.info("Function %s %s (model %s)", name, kind.lower(), spec.model)

    def _parse(self, item: Mapping[str, Any], what: str) -> FunctionSpec | None:
        name = _resource_name(item)
        source = f"kubernetes:{self.namespace}/{PLURAL}/{name}"
        try:
            return parse_function_resource(item, source)
        except FunctionDocumentError as exc:
            kept = " (its previous version keeps serving)" if name in self._specs else ""
            log.warning("ignoring %s Function: %s%s", what, exc, kept)
            return None

    def _publish(self) -> None:
        assert self._holder is not None
        self._holder.replace(Registry(self._specs.values()))


def _resource_name(item: Mapping[str, Any]) -> str:
    metadata = item.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    return str(name) if name is not None else "(unnamed)"
