"""Prometheus metrics: every RPC by method, function and status, and the Triton endpoints.

RPCs are measured by a server interceptor, so the servicers stay free of
bookkeeping; endpoint figures are read from the pool at scrape time rather
than kept twice. Metrics live in their own ``CollectorRegistry`` (no global
state) and are served over HTTP only when an address is configured.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from toolmesh_gateway.endpoints import EndpointPool
from toolmesh_gateway.interception import replace_unary
from toolmesh_gateway.limits import Admission

__all__ = ["GatewayMetrics"]

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class _PoolCollector(Collector):
    """Per-endpoint figures; ``pool`` and ``triton_pod`` name discovered endpoints.

    ``triton_pod`` (not ``pod``, which Prometheus sets to the scraped gateway's own
    pod) is what the Prometheus Adapter maps to the Triton pod, so that a pool's
    HorizontalPodAutoscaler can read ``toolmesh_endpoint_in_flight`` per pod.
    """

    _LABELS = ("endpoint", "pool", "triton_pod")

    def __init__(self, pool: EndpointPool) -> None:
        self._pool = pool

    def collect(self) -> Iterator[Metric]:
        labels = list(self._LABELS)
        families = {
            "healthy": GaugeMetricFamily(
                "toolmesh_endpoint_healthy", "1 if the Triton endpoint is admitted", labels=labels
            ),
            "draining": GaugeMetricFamily(
                "toolmesh_endpoint_draining",
                "1 if the endpoint takes no new calls (terminating, not ready, or gone)",
                labels=labels,
            ),
            "in_flight": GaugeMetricFamily(
                "toolmesh_endpoint_in_flight", "calls in flight to the endpoint", labels=labels
            ),
            "calls": GaugeMetricFamily(
                "toolmesh_endpoint_calls", "calls routed to the endpoint", labels=labels
            ),
            "failures": GaugeMetricFamily(
                "toolmesh_endpoint_ejections", "times the endpoint was ejected", labels=labels
            ),
        }
        for e in self._pool.endpoints:  # a list replaced, never mutated: safe from this thread
            key = [e.url, e.config.pool, e.config.pod]
            families["healthy"].add_metric(key, 1.0 if e.healthy else 0.0)
            families["draining"].add_metric(key, 1.0 if e.draining else 0.0)
            families["in_flight"].add_metric(key, e.in_flight)
            families["calls"].add_metric(key, e.calls)
            families["failures"].add_metric(key, e.failures)
        yield from families.values()


class _AdmissionCollector(Collector):
    def __init__(self, admission: Admission) -> None:
        self._admission = admission

    def collect(self) -> Iterator[Metric]:
        a = self._admission
        yield GaugeMetricFamily(
            "toolmesh_admission_in_flight", "admitted calls running", value=a.in_flight
        )
        yield GaugeMetricFamily(
            "toolmesh_admission_queued", "calls waiting for a slot", value=a.queued
        )
        yield CounterMetricFamily(
            "toolmesh_admission_rejected",
            "calls refused with RESOURCE_EXHAUSTED by the admission limits",
            value=a.rejected,
        )


class GatewayMetrics(grpc.aio.ServerInterceptor):
    """Counts and times every unary RPC; add it to the server's interceptors."""

    def __init__(self, pool: EndpointPool, admission: Admission | None = None) -> None:
        self.registry = CollectorRegistry()
        self.rpcs = Counter(
            "toolmesh_rpc",
            "RPCs answered by the gateway",
            ["method", "function", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "toolmesh_rpc_seconds",
            "RPC latency at the gateway",
            ["method", "function"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_PoolCollector(pool))
        if admission is not None:
            self.registry.register(_AdmissionCollector(admission))
        self._server: Any = None

    def serve(self, address: str) -> int:
        """Expose ``/metrics`` over HTTP on ``host:port``; returns the bound port."""
        host, _, port = address.rpartition(":")
        server, _thread = start_http_server(
            int(port), addr=host or "0.0.0.0", registry=self.registry
        )
        self._server = server
        return int(server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method.rsplit("/", 1)[-1]
        inner = handler.unary_unary
        rpcs, latency = self.rpcs, self.latency

        async def measured(request: Any, context: grpc.aio.ServicerContext) -> Any:
            function = getattr(request, "function", "") if method == "Call" else ""
            started = time.perf_counter()
            code = "OK"
            try:
                return await inner(request, context)
            except BaseException:
                status = context.code()
                code = status.name if isinstance(status, grpc.StatusCode) else "UNKNOWN"
                raise
            finally:
                # Latency first: once a call shows in the counter, its latency is in too.
                latency.labels(method, function).observe(time.perf_counter() - started)
                rpcs.labels(method, function, code).inc()

        return replace_unary(handler, measured)
