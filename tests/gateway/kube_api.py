"""A local HTTP server speaking the Kubernetes API's list/watch protocol for one resource.

Enough of the real protocol for a client to be unable to tell: a collection
``GET .../namespaces/{ns}/functions`` answers a ``FunctionList`` whose
``metadata.resourceVersion`` is the store's; with ``?watch=true&resourceVersion=N``
it answers ``200`` with ``Transfer-Encoding: chunked`` and one JSON watch event per
line (``{"type": "ADDED", "object": {...}}``), first the events after ``N`` still in
its history, then live ones, until ``timeoutSeconds`` or :meth:`end_watches`. A
watch from a ``resourceVersion`` older than the history gets an ``ERROR`` event
with a ``410 Expired`` Status, as the API server sends after compaction.
"""

from __future__ import annotations

import copy
import json
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

GROUP, VERSION, PLURAL = "toolmesh.dev", "v1", "functions"
_END = object()


class FakeKubernetesAPI:
    """The ``functions.toolmesh.dev`` collection of one namespace, with its watch stream."""

    def __init__(self, namespace: str, *, token: str = "test-token") -> None:
        self.namespace = namespace
        self.token = token
        self._lock = threading.Lock()
        self._objects: dict[str, dict[str, Any]] = {}
        self._revision = 100
        self._history: list[tuple[int, str]] = []  # (resourceVersion, event line)
        self._oldest = self._revision  # watches from before this get 410
        self._watchers: list[queue.Queue[object]] = []
        #: Every request: (method, path, query, Authorization header).
        self.requests: list[tuple[str, str, dict[str, str], str | None]] = []
        #: When set, list requests are answered with this HTTP status (e.g. 403).
        self.refuse_with: int | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def collection(self) -> str:
        return f"/apis/{GROUP}/{VERSION}/namespaces/{self.namespace}/{PLURAL}"

    def start(self) -> FakeKubernetesAPI:
        self._thread.start()
        return self

    def close(self) -> None:
        self.end_watches()
        self._server.shutdown()
        self._server.server_close()

    # ---- changing the store, as kubectl would ----------------------------------------

    def apply(self, document: dict[str, Any]) -> int:
        """Create or replace a Function; returns its new resourceVersion."""
        with self._lock:
            name = document["metadata"]["name"]
            kind = "MODIFIED" if name in self._objects else "ADDED"
            obj = self._stamp(document)
            self._objects[name] = obj
            self._emit({"type": kind, "object": obj})
            return self._revision

    def delete(self, name: str) -> None:
        with self._lock:
            obj = self._objects.pop(name)
            obj = copy.deepcopy(obj)
            self._revision += 1
            obj["metadata"]["resourceVersion"] = str(self._revision)
            self._emit({"type": "DELETED", "object": obj})

    def send_raw(self, line: str) -> None:
        """Send one arbitrary line to the live watches (not stored, not in history)."""
        with self._lock:
            for watcher in self._watchers:
                watcher.put(line)

    def apply_quietly(self, document: dict[str, Any] | None, *, delete: str | None = None) -> None:
        """Change the store while history is lost (compaction): no event is ever sent."""
        with self._lock:
            if document is not None:
                self._objects[document["metadata"]["name"]] = self._stamp(document)
            if delete is not None:
                del self._objects[delete]
                self._revision += 1
            self._history.clear()
            self._oldest = self._revision

    def end_watches(self) -> None:
        """End every open watch, as the API server does at timeoutSeconds."""
        with self._lock:
            for watcher in self._watchers:
                watcher.put(_END)

    @property
    def watch_count(self) -> int:
        with self._lock:
            return len(self._watchers)

    def _stamp(self, document: dict[str, Any]) -> dict[str, Any]:
        self._revision += 1
        obj = copy.deepcopy(document)
        metadata = obj.setdefault("metadata", {})
        metadata.update(
            namespace=self.namespace,
            resourceVersion=str(self._revision),
            uid=f"uid-{metadata.get('name')}",
            creationTimestamp="2026-01-01T00:00:00Z",
        )
        return obj

    def _emit(self, event: dict[str, Any]) -> None:
        line = json.dumps(event)
        self._history.append((self._revision, line))
        for watcher in self._watchers:
            watcher.put(line)

    # ---- HTTP --------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

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
                if parts.path != api.collection:
                    return self._status(404, "NotFound", f"{parts.path} not found")
                if query.get("watch", "").lower() in ("true", "1"):
                    return self._watch(query)
                if api.refuse_with is not None:
                    return self._status(api.refuse_with, "Forbidden", "functions is forbidden")
                with api._lock:
                    body = {
                        "apiVersion": f"{GROUP}/{VERSION}",
                        "kind": "FunctionList",
                        "metadata": {"resourceVersion": str(api._revision)},
                        "items": [copy.deepcopy(o) for o in api._objects.values()],
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
                self._json(
                    code,
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "status": "Failure",
                        "message": message,
                        "reason": reason,
                        "code": code,
                    },
                )

            def _chunk(self, line: str) -> None:
                data = (line + "\n").encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _watch(self, query: dict[str, str]) -> None:
                since = int(query.get("resourceVersion") or 0)
                deadline = time.monotonic() + float(query.get("timeoutSeconds") or 3600)
                events: queue.Queue[object] = queue.Queue()
                with api._lock:
                    expired = since < api._oldest
                    backlog = [line for rv, line in api._history if rv > since]
                    if not expired:
                        api._watchers.append(events)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    if expired:
                        status = {
                            "kind": "Status",
                            "apiVersion": "v1",
                            "status": "Failure",
                            "message": f"too old resource version: {since} ({api._oldest})",
                            "reason": "Expired",
                            "code": 410,
                        }
                        self._chunk(json.dumps({"type": "ERROR", "object": status}))
                    else:
                        for line in backlog:
                            self._chunk(line)
                        while (left := deadline - time.monotonic()) > 0:
                            try:
                                item = events.get(timeout=min(left, 0.5))
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
                        if events in api._watchers:
                            api._watchers.remove(events)
                try:
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except OSError:
                    pass
                self.close_connection = True

        return Handler


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
