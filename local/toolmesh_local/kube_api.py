"""A local stand-in for the Kubernetes API server: list/watch of a few namespaced resources.

Rehearsing what the gateway does in a cluster (its Functions, each pool's pods)
needs an API server; a real one cannot run here, so this HTTP server speaks enough
of the real protocol that the ``kubernetes`` client cannot tell:

- a collection ``GET`` (``/apis/{group}/{version}/namespaces/{ns}/{plural}``, or
  ``/api/v1/...`` for the core group) answers a ``…List`` whose
  ``metadata.resourceVersion`` is the store's; ``labelSelector`` (equality terms)
  filters it;
- with ``?watch=true&resourceVersion=N`` it answers ``200`` with
  ``Transfer-Encoding: chunked`` and one JSON watch event per line
  (``{"type": "ADDED", "object": {...}}``), first the matching events after ``N``
  still in its history, then live ones, until ``timeoutSeconds`` or
  :meth:`FakeKubernetesAPI.end_watches`;
- a watch from a ``resourceVersion`` older than the history gets an ``ERROR`` event
  with a ``410 Expired`` Status, as the API server sends after compaction;
- a request without the bearer token is ``401``.

One revision counter spans every resource, as etcd's does. Objects are stored as
given (stamped with namespace, resourceVersion, uid); nothing is validated or
defaulted, so tests can also send what a real server would refuse.
"""

from __future__ import annotations

import copy
import json
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from toolmesh_local._managed import Managed

__all__ = ["RESOURCES", "FakeKubernetesAPI", "Resource", "kubeconfig"]

_END = object()


@dataclass(frozen=True, slots=True)
class Resource:
    """A namespaced resource type the stand-in serves."""

    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def collection(self, namespace: str) -> str:
        prefix = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        return f"{prefix}/namespaces/{namespace}/{self.plural}"


#: The resources it serves, by kind: what the gateway lists and watches.
RESOURCES = {
    r.kind: r
    for r in (
        Resource("toolmesh.dev", "v1", "functions", "Function"),
        Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice"),
    )
}


@dataclass(frozen=True, slots=True)
class _Event:
    revision: int
    kind: str  # the resource's kind
    labels: Mapping[str, str]
    line: str


@dataclass(frozen=True, slots=True)
class _Watcher:
    events: queue.Queue[object]
    kind: str
    selector: Mapping[str, str]

    def wants(self, kind: str, labels: Mapping[str, str]) -> bool:
        return kind == self.kind and _matches(self.selector, labels)


class FakeKubernetesAPI(Managed):
    """The resources of :data:`RESOURCES` in one namespace, with their watch streams."""

    def __init__(
        self, namespace: str, *, token: str = "test-token", host: str = "127.0.0.1"
    ) -> None:
        self.namespace = namespace
        self.token = token
        self._lock = threading.Lock()
        self._objects: dict[tuple[str, str], dict[str, Any]] = {}  # (kind, name) → object
        self._revision = 100
        self._history: list[_Event] = []
        self._oldest = self._revision  # watches from before this get 410
        self._watchers: list[_Watcher] = []
        #: Every request: (method, path, query, Authorization header).
        self.requests: list[tuple[str, str, dict[str, str], str | None]] = []
        #: When set, list requests are answered with this HTTP status (e.g. 403).
        self.refuse_with: int | None = None
        self._server = ThreadingHTTPServer((host, 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def collection(self) -> str:
        """The Functions' collection path (the first resource the gateway read)."""
        return RESOURCES["Function"].collection(self.namespace)

    def start(self) -> FakeKubernetesAPI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.end_watches()
        self._server.shutdown()
        self._server.server_close()

    # ---- changing the store, as kubectl (or a controller) would -------------------------

    def apply(self, document: Mapping[str, Any]) -> int:
        """Create or replace an object (its ``kind`` says which resource); returns its version."""
        with self._lock:
            kind, name = _key(document)
            event = "MODIFIED" if (kind, name) in self._objects else "ADDED"
            obj = self._stamp(document)
            self._objects[kind, name] = obj
            self._emit(kind, {"type": event, "object": obj})
            return self._revision

    def delete(self, name: str, kind: str = "Function") -> None:
        with self._lock:
            obj = copy.deepcopy(self._objects.pop((kind, name)))
            self._revision += 1
            obj["metadata"]["resourceVersion"] = str(self._revision)
            self._emit(kind, {"type": "DELETED", "object": obj})

    def get(self, name: str, kind: str = "Function") -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._objects[kind, name])

    def send_raw(self, line: str) -> None:
        """Send one arbitrary line to every live watch (not stored, not in history)."""
        with self._lock:
            for watcher in self._watchers:
                watcher.events.put(line)

    def apply_quietly(
        self,
        document: Mapping[str, Any] | None,
        *,
        delete: str | None = None,
        kind: str = "Function",
    ) -> None:
        """Change the store while history is lost (compaction): no event is ever sent."""
        with self._lock:
            if document is not None:
                self._objects[_key(document)] = self._stamp(document)
            if delete is not None:
                del self._objects[kind, delete]
                self._revision += 1
            self._history.clear()
            self._oldest = self._revision

    def end_watches(self) -> None:
        """End every open watch, as the API server does at timeoutSeconds."""
        with self._lock:
            for watcher in self._watchers:
                watcher.events.put(_END)

    @property
    def watch_count(self) -> int:
        with self._lock:
            return len(self._watchers)

    def _stamp(self, document: Mapping[str, Any]) -> dict[str, Any]:
        self._revision += 1
        obj = copy.deepcopy(dict(document))
        metadata = obj.setdefault("metadata", {})
        metadata.update(
            namespace=self.namespace,
            resourceVersion=str(self._revision),
            uid=f"uid-{obj.get('kind')}-{metadata.get('name')}",
            creationTimestamp="2026-01-01T00:00:00Z",
        )
        return obj

    def _emit(self, kind: str, event: dict[str, Any]) -> None:
        labels = event["object"]["metadata"].get("labels") or {}
        record = _Event(self._revision, kind, labels, json.dumps(event))
        self._history.append(record)
        for watcher in self._watchers:
            if watcher.wants(kind, labels):
                watcher.events.put(record.line)

    # ---- HTTP --------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self
        kinds = {r.collection(self.namespace): r for r in RESOURCES.values()}

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                api.requests.append(("GET", parts.path, query, self.headers.get("Authorization")))
                if self.headers.get("Authorization") != f"Bearer {api.token}":
                    return self._status(401, "Unauthorized", "no or wrong bearer token")
                resource = kinds.get(parts.path)
                if resource is None:
                    return self._status(404, "NotFound", f"{parts.path} not found")
                try:
                    selector = _parse_selector(query.get("labelSelector", ""))
                except ValueError as exc:
                    return self._status(400, "BadRequest", str(exc))
                if query.get("watch", "").lower() in ("true", "1"):
                    return self._watch(resource, selector, query)
                if api.refuse_with is not None:
                    return self._status(
                        api.refuse_with, "Forbidden", f"{resource.plural} is forbidden"
                    )
                with api._lock:
                    items = [
                        copy.deepcopy(o)
                        for (kind, _), o in api._objects.items()
                        if kind == resource.kind
                        and _matches(selector, o["metadata"].get("labels") or {})
                    ]
                    body = {
                        "apiVersion": resource.api_version,
                        "kind": f"{resource.kind}List",
                        "metadata": {"resourceVersion": str(api._revision)},
                        "items": items,
                    }
                self._json(200, body)

            def _json(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _status(self, code: int, reason: str, message: str) -> None:
                self._json(code, _status_body(code, reason, message))

            def _chunk(self, line: str) -> None:
                data = (line + "\n").encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _watch(
                self, resource: Resource, selector: Mapping[str, str], query: dict[str, str]
            ) -> None:
                since = int(query.get("resourceVersion") or 0)
                deadline = time.monotonic() + float(query.get("timeoutSeconds") or 3600)
                watcher = _Watcher(queue.Queue(), resource.kind, selector)
                with api._lock:
                    expired = since < api._oldest
                    backlog = [
                        e.line
                        for e in api._history
                        if e.revision > since and watcher.wants(e.kind, e.labels)
                    ]
                    if not expired:
                        api._watchers.append(watcher)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    if expired:
                        message = f"too old resource version: {since} ({api._oldest})"
                        status = _status_body(410, "Expired", message)
                        self._chunk(json.dumps({"type": "ERROR", "object": status}))
                    else:
                        for line in backlog:
                            self._chunk(line)
                        while (left := deadline - time.monotonic()) > 0:
                            try:
                                item = watcher.events.get(timeout=min(left, 0.5))
                            except queue.Empty:
                                continue
                            if item is _END:
                                break
                            self._chunk(str(item))
                except OSError:  # the client went away
                    self.close_connection = True
                    return
                finally:
                    with api._lock:
                        if watcher in api._watchers:
                            api._watchers.remove(watcher)
                try:
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except OSError:
                    pass
                self.close_connection = True

        return Handler


def _key(document: Mapping[str, Any]) -> tuple[str, str]:
    kind = document.get("kind")
    if kind not in RESOURCES:
        raise ValueError(f"the stand-in API serves {sorted(RESOURCES)}, not {kind!r}")
    return str(kind), str(document["metadata"]["name"])


def _parse_selector(text: str) -> dict[str, str]:
    """Equality-based label selector terms (``a=b,c==d``); set-based ones are refused."""
    selector = {}
    for term in filter(None, (t.strip() for t in text.split(","))):
        key, sep, value = term.replace("==", "=").partition("=")
        if not sep or not key or "!" in key or " " in term:
            raise ValueError(f"unsupported label selector term {term!r} (equality only)")
        selector[key] = value
    return selector


def _matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def kubeconfig(api: FakeKubernetesAPI, namespace: str | None = None) -> str:
    """A kubeconfig file's text that points a client at ``api`` with its bearer token."""
    context: dict[str, Any] = {"cluster": "fake", "user": "fake"}
    if namespace:
        context["namespace"] = namespace
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": api.url}}],
            "users": [{"name": "fake", "user": {"token": api.token}}],
            "contexts": [{"name": "fake", "context": context}],
            "current-context": "fake",
        }
    )
