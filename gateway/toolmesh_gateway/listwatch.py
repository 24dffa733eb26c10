"""List, then watch, one collection of the Kubernetes API: the loop behind every live view.

The gateway keeps two kinds of cluster state live, its Functions (``kube``) and
the pods of each Triton pool (``discovery``); both follow the API server's
list/watch protocol the way client-go's reflector does, so both are this one loop:

- a list gives the whole collection and its ``resourceVersion``;
- a watch from that version streams ``ADDED``/``MODIFIED``/``DELETED`` events (and
  ``BOOKMARK``s that only advance the version);
- a watch that ends (the server's ``timeoutSeconds``, a dropped connection) resumes
  from the last version seen; one that expired (``410 Gone``, after etcd compaction)
  or failed otherwise is followed by a fresh list, with a capped backoff between
  failures.

The loop runs in a daemon thread with the synchronous ``kubernetes`` client; the
owner's callbacks run in that thread and must hand over to the event loop
themselves if they touch asyncio state.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import watch
from kubernetes.client.rest import ApiException

__all__ = ["MIN_BACKOFF_S", "ListWatch", "describe_error"]

log = logging.getLogger(__name__)

MIN_BACKOFF_S = 0.5

#: ``on_list(items)``: the whole collection replaced the previous state.
OnList = Callable[[list[Mapping[str, Any]]], None]
#: ``on_event(kind, object)``: ``kind`` is ADDED, MODIFIED or DELETED.
OnEvent = Callable[[str, Mapping[str, Any]], None]


class ListWatch:
    """Keeps an owner in step with one collection (optionally label-selected).

    Args:
        what: A name for logs, e.g. ``"functions.toolmesh.dev in ns"``.
        list_call: The generated client's list method (``list_namespaced_…``); called
            with ``args`` for the list, and by ``kubernetes.watch`` for the watch.
        args: Its positional arguments (namespace, or group/version/namespace/plural).
        on_list: Called with every item after each (re)list.
        on_event: Called for each ADDED/MODIFIED/DELETED event.
        label_selector: Only objects with these labels (``key=value,…``).
        watch_timeout_s: Asks the server to end each watch after this long (it is then
            resumed), so a silently dead connection cannot last forever.
        max_backoff_s: Longest wait between attempts after failures.
    """

    def __init__(
        self,
        what: str,
        list_call: Callable[..., Any],
        args: tuple[Any, ...],
        *,
        on_list: OnList,
        on_event: OnEvent,
        label_selector: str | None = None,
        watch_timeout_s: int = 300,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.what = what
        self._list_call = list_call
        self._args = args
        self._on_list = on_list
        self._on_event = on_event
        self._selector = {"label_selector": label_selector} if label_selector else {}
        self._watch_timeout_s = watch_timeout_s
        self._max_backoff_s = max_backoff_s
        self._stopping = threading.Event()
        self._watch: watch.Watch | None = None
        self._thread: threading.Thread | None = None
        self.resource_version: str | None = None

    @property
    def watching(self) -> bool:
        """Whether the watch thread is running."""
        return self._thread is not None and self._thread.is_alive()

    def list(self) -> None:
        """One list, in the calling thread; raises what the client raises."""
        response = self._list_call(
            *self._args, **self._selector, _request_timeout=60, _preload_content=False
        )
        listing = json.loads(response.data)
        items = [i for i in listing.get("items") or [] if isinstance(i, Mapping)]
        self.resource_version = (listing.get("metadata") or {}).get("resourceVersion")
        self._on_list(items)

    def start(self) -> None:
        """Watch from the last list's version in a daemon thread (call :meth:`list` first)."""
        if self._thread is not None:
            raise RuntimeError(f"the watch of {self.what} can be started once")
        self._thread = threading.Thread(target=self._run, name=f"watch {self.what}", daemon=True)
        self._thread.start()

    async def aclose(self) -> None:
        """Stop watching; the owner keeps its last state."""
        self._stopping.set()
        deadline = time.monotonic() + 10.0
        while self._thread is not None and self._thread.is_alive():
            current = self._watch
            if current is not None:
                current.stop()  # shuts the watch's socket down, which unblocks the thread's read
            await asyncio.to_thread(self._thread.join, 0.2)
            if time.monotonic() > deadline:
                log.warning("the watch of %s did not stop; leaving it (daemon)", self.what)
                break

    # ---- in the worker thread ----------------------------------------------------------

    def _run(self) -> None:
        backoff = MIN_BACKOFF_S
        relist = False
        while not self._stopping.is_set():
            try:
                if relist:
                    self.list()
                    relist = False
                started = time.monotonic()
                events = self._watch_once()
                if events or time.monotonic() - started > MIN_BACKOFF_S * 4:
                    backoff = MIN_BACKOFF_S  # a healthy watch that the server ended: resume now
                    continue
                # an empty watch that ended at once: do not spin; wait, then resume
            except ApiException as exc:
                if self._stopping.is_set():
                    break
                relist = True
                if exc.status == 410:  # expired: a fresh list is the whole remedy
                    log.info("the watch of %s expired (410 Gone); listing again", self.what)
                    continue
                log.warning(
                    "the watch of %s failed: %s; listing again", self.what, describe_error(exc)
                )
            except Exception as exc:  # connection and protocol errors
                if self._stopping.is_set():
                    break
                relist = True
                log.warning(
                    "the watch of %s was interrupted: %s; listing again",
                    self.what,
                    describe_error(exc),
                )
            if self._stopping.wait(backoff):
                break
            backoff = min(backoff * 2, self._max_backoff_s)

    def _watch_once(self) -> int:
        """Follow one watch request until the server ends it (or ``aclose``); count events."""
        self._watch = watch.Watch()
        events = 0
        try:
            for event in self._watch.stream(
                self._list_call,
                *self._args,
                **self._selector,
                resource_version=self.resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=self._watch_timeout_s,
                # a read blocks at most this long: a connection that died silently ends too
                _request_timeout=(10, self._watch_timeout_s + 30),
            ):
                if self._stopping.is_set():
                    break
                events += 1
                self._dispatch(event)
                if self._watch.resource_version:
                    self.resource_version = self._watch.resource_version
        finally:
            self._watch = None
        return events

    def _dispatch(self, event: Any) -> None:
        kind = event.get("type") if isinstance(event, Mapping) else None
        item = event.get("raw_object") if isinstance(event, Mapping) else None
        if kind == "BOOKMARK":
            return
        if kind not in ("ADDED", "MODIFIED", "DELETED") or not isinstance(item, Mapping):
            log.warning("ignoring a malformed watch event of %s: %.200r", self.what, event)
            return
        self._on_event(kind, item)


def describe_error(exc: BaseException) -> str:
    """An API error as ``HTTP 403 Forbidden``; anything else as its message."""
    if isinstance(exc, ApiException):
        return f"HTTP {exc.status} {exc.reason}".strip()
    return str(exc)
