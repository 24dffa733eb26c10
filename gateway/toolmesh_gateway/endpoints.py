"""The Triton servers behind the gateway: health, what each serves, and who gets a call.

Each endpoint is one Triton server: a node given in the configuration, or in a
cluster one pod of a pool, found by endpoint discovery. A background loop asks
every endpoint ``ServerReady`` and its repository index of ready models; an
endpoint that fails is ejected at once (also when a call to it fails with
UNAVAILABLE) and re-admitted when a later check succeeds. Calls for a model go
to the healthy endpoint serving it with the fewest calls in flight (least
outstanding requests), ties broken round robin so that light load still spreads.

Discovery changes the membership while calls run (:meth:`EndpointPool.reconcile`):
a new pod is checked at once and takes calls as soon as it answers; a pod that is
terminating, not ready, or gone from its Service is *drained*: it takes no new
call, its calls in flight finish, and once it is gone and idle its connections
are closed. The endpoint list is replaced, never mutated in place, so a scrape of
the metrics from another thread always iterates a consistent list.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.grpc.aio import InferenceServerClient
from tritonclient.utils import InferenceServerException

from toolmesh_gateway.errors import GatewayError

__all__ = ["Endpoint", "EndpointConfig", "EndpointPool", "Target", "clean_load_failure"]

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 2**31 - 1


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    """One Triton server: its gRPC address and, optionally, the models it is meant to serve."""

    url: str
    models: frozenset[str] | None = None  # None: whatever its repository reports ready
    #: The pool it belongs to (discovered endpoints); "" for configured ones.
    pool: str = ""
    #: The Triton pod behind it (the EndpointSlice's targetRef), for metrics and autoscaling.
    pod: str = ""


@dataclass(frozen=True, slots=True)
class Target:
    """A discovered endpoint as its EndpointSlice describes it."""

    pod: str = ""
    #: Ready and not terminating: may take new calls.
    ready: bool = True


@dataclass(eq=False)
class Endpoint:
    """A Triton server as the gateway sees it; counters are for status and metrics."""

    config: EndpointConfig
    client: InferenceServerClient
    channel: grpc.aio.Channel
    stub: service_pb2_grpc.GRPCInferenceServiceStub
    healthy: bool = False
    models: frozenset[str] = frozenset()
    #: Models its repository failed to load, with Triton's reason (cleaned).
    load_failures: dict[str, str] = field(default_factory=dict)
    in_flight: int = 0
    calls: int = 0
    failures: int = 0
    last_error: str = ""
    #: Takes no new call: its pod is terminating, not ready, or left its Service.
    draining: bool = False
    #: Gone from discovery: closed once idle.
    removed: bool = False

    @property
    def url(self) -> str:
        return self.config.url

    def serves(self, model: str) -> bool:
        return self.healthy and not self.draining and model in self.models

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        """Count a call in flight for least-outstanding-requests routing."""
        self.in_flight += 1
        self.calls += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    def eject(self, reason: str) -> None:
        if self.healthy:
            log.warning("ejecting Triton endpoint %s: %s", self.url, reason)
        self.healthy = False
        self.failures += 1
        self.last_error = reason


def _open(config: EndpointConfig) -> Endpoint:
    options = [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ]
    channel = grpc.aio.insecure_channel(config.url, options=options)
    return Endpoint(
        config=config,
        client=InferenceServerClient(config.url),
        channel=channel,
        stub=service_pb2_grpc.GRPCInferenceServiceStub(channel),
    )


@dataclass
class EndpointPool:
    """All endpoints, their health loop, and the routing decision."""

    endpoints: list[Endpoint]
    check_interval_s: float = 2.0
    check_timeout_s: float = 2.0
    #: Models each discovered pool is declared to load (:meth:`for_pools`), by pool name.
    pools: Mapping[str, frozenset[str]] = field(default_factory=dict)
    _tiebreak: Iterator[int] = field(default_factory=itertools.count)
    _checker: asyncio.Task[None] | None = None
    _first_check: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @classmethod
    def open(cls, configs: Sequence[EndpointConfig], **options: float) -> EndpointPool:
        """A fixed set of endpoints (``--triton-url``, ``--endpoints``)."""
        if not configs:
            raise ValueError("at least one Triton endpoint is needed")
        return cls([_open(c) for c in configs], **options)

    @classmethod
    def for_pools(cls, pools: Mapping[str, frozenset[str]], **options: float) -> EndpointPool:
        """No endpoint yet: discovery adds each pool's pods (:meth:`reconcile`)."""
        if not pools:
            raise ValueError("at least one Triton pool is needed")
        return cls([], pools=dict(pools), **options)

    # --- membership (discovery) -------------------------------------------------

    def reconcile(self, pool: str, targets: Mapping[str, Target]) -> None:
        """Make ``pool``'s endpoints those of ``targets`` (url → what its slice says).

        Runs in the event loop. New ready endpoints are checked at once; endpoints
        not ready, terminating or absent are drained; absent ones are closed when idle.
        """
        models = self.pools.get(pool)
        current = {e.url: e for e in self.endpoints if e.config.pool == pool and not e.removed}
        added: list[Endpoint] = []
        for url, target in targets.items():
            endpoint = current.get(url)
            if endpoint is None:
                if not target.ready:
                    continue  # never took a call: nothing to drain
                endpoint = _open(EndpointConfig(url, models, pool=pool, pod=target.pod))
                added.append(endpoint)
                self._spawn(self.check(endpoint))
                log.info("pool %s: endpoint %s (pod %s) joined", pool, url, target.pod or "?")
            elif endpoint.draining == target.ready:
                endpoint.draining = not target.ready
                log.info(
                    "pool %s: endpoint %s %s",
                    pool,
                    url,
                    "is ready again" if target.ready else "is draining (not ready or terminating)",
                )
        for url, endpoint in current.items():
            if url not in targets:
                endpoint.draining = endpoint.removed = True
                log.info(
                    "pool %s: endpoint %s left; draining %d call(s)", pool, url, endpoint.in_flight
                )
        self.endpoints = [*self.endpoints, *added]
        self._reap()

    def _reap(self) -> None:
        """Close and forget removed endpoints that have no call in flight."""
        idle = [e for e in self.endpoints if e.removed and e.in_flight == 0]
        if idle:
            self.endpoints = [e for e in self.endpoints if e not in idle]
            for endpoint in idle:
                self._spawn(_close(endpoint))

    def _spawn(self, work: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- health -----------------------------------------------------------------

    async def check(self, endpoint: Endpoint) -> None:
        """One readiness probe: ServerReady on both connections, then the ready models.

        Calls travel on two connections (tritonclient's for Functions, the raw
        channel for KServe); each reconnects on its own after Triton restarts, so
        an endpoint is healthy only once both answer. Checking one alone let the
        gateway report SERVING while calls still failed on the other.
        """
        try:
            raw_ready, client_ready = await asyncio.gather(
                endpoint.stub.ServerReady(
                    service_pb2.ServerReadyRequest(), timeout=self.check_timeout_s
                ),
                endpoint.client.is_server_ready(client_timeout=self.check_timeout_s),
            )
            if not (raw_ready.ready and client_ready):
                endpoint.eject("server not ready")
                return
            index = await endpoint.stub.RepositoryIndex(
                service_pb2.RepositoryIndexRequest(ready=False), timeout=self.check_timeout_s
            )
        except grpc.aio.AioRpcError as exc:
            endpoint.eject(f"{exc.code().name}: {exc.details()}")
            return
        except InferenceServerException as exc:  # tritonclient's wrapping of the same
            endpoint.eject(f"{exc.status()}: {exc.message()}")
            return
        ready_models = frozenset(m.name for m in index.models if m.state == "READY")
        endpoint.load_failures = {
            m.name: clean_load_failure(m.reason)
            for m in index.models
            if m.state == "UNAVAILABLE" and m.reason and m.name not in ready_models
        }
        declared = endpoint.config.models
        endpoint.models = ready_models if declared is None else ready_models & declared
        if not endpoint.healthy:
            log.info(
                "Triton endpoint %s is healthy, serving %s", endpoint.url, sorted(endpoint.models)
            )
        endpoint.healthy = True
        endpoint.last_error = ""

    async def check_all(self) -> None:
        self._reap()
        await asyncio.gather(*(self.check(e) for e in self.endpoints if not e.removed))
        self._first_check.set()

    async def _check_forever(self) -> None:
        while True:
            await self.check_all()
            await asyncio.sleep(self.check_interval_s)

    def start(self) -> None:
        """Start the health loop (in the running event loop)."""
        if self._checker is None:
            self._checker = asyncio.create_task(self._check_forever(), name="triton-health")

    async def wait_checked(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first_check.wait(), timeout)

    @property
    def any_healthy(self) -> bool:
        return any(e.healthy for e in self.endpoints)

    def declared_models(self) -> frozenset[str] | None:
        """Models the configuration promises: the pools', or every configured endpoint's."""
        if self.pools:
            return frozenset().union(*self.pools.values())
        if any(e.config.models is None for e in self.endpoints):
            return None
        return frozenset().union(*(e.config.models or () for e in self.endpoints))

    def availability(self, model: str) -> tuple[bool, str]:
        """Whether a healthy endpoint serves ``model``; if not, the reason to show callers."""
        if any(e.serves(model) for e in self.endpoints):
            return True, ""
        failure = self.load_failure(model)
        if failure is not None:
            return False, failure
        return False, f"no healthy Triton endpoint serves model {model!r}"

    def load_failure(self, model: str) -> str | None:
        """Why ``model`` failed to load on a healthy endpoint (e.g. its weights are missing)."""
        for endpoint in self.endpoints:
            if endpoint.healthy and model in endpoint.load_failures:
                return endpoint.load_failures[model]
        return None

    # --- routing ----------------------------------------------------------------

    def pick(self, model: str, exclude: Endpoint | None = None) -> Endpoint:
        """The healthy endpoint serving ``model`` with the fewest calls in flight.

        Raises:
            GatewayError: FAILED_PRECONDITION with the reason when the model failed to
                load (the weights are missing: the message names the pull command);
                UNAVAILABLE naming the model when no healthy endpoint serves it.
        """
        candidates = [e for e in self.endpoints if e.serves(model) and e is not exclude]
        if not candidates and exclude is None:
            failure = self.load_failure(model)
            if failure is not None:
                raise GatewayError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"model {model!r} is not loaded: {failure}",
                )
        if not candidates:
            known = [e.url for e in self.endpoints if model in e.models or e.config.models is None]
            where = ", ".join(known) or "no configured endpoint"
            if self.pools:
                owners = sorted(p for p, models in self.pools.items() if model in models)
                pods = f"; pods: {', '.join(known)}" if known else ", none with a ready pod"
                where = f"pool {', '.join(owners)}{pods}" if owners else "no pool loads it"
            raise GatewayError(
                grpc.StatusCode.UNAVAILABLE,
                f"no healthy Triton endpoint serves model {model!r} (checked: {where})",
            )
        least = min(e.in_flight for e in candidates)
        tied = [e for e in candidates if e.in_flight == least]
        return tied[next(self._tiebreak) % len(tied)]

    async def aclose(self) -> None:
        if self._checker is not None:
            self._checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checker
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for endpoint in self.endpoints:
            await _close(endpoint)


async def _close(endpoint: Endpoint) -> None:
    await endpoint.client.close()
    await endpoint.channel.close()


_STATUS_PREFIX = re.compile(r"^(?:Internal|Unknown|Unavailable|Not found|Invalid argument): ")


def clean_load_failure(reason: str) -> str:
    """Triton's reason for a failed load, without its status prefix and Python traceback.

    ``"Internal: WeightsMissing: caption needs … \n\nAt:\n  …/model.py(20): initialize"``
    becomes ``"caption needs …"``: the model's own message, which for missing weights
    names the ``toolmesh models pull`` command. Other exception names are kept.
    """
    text = reason.split("\n\nAt:", 1)[0].strip()
    text = _STATUS_PREFIX.sub("", text)
    return text.removeprefix("WeightsMissing: ")
