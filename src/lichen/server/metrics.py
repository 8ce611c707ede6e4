"""Prometheus metrics of one server process, served at ``GET /metrics`` (no credentials).

prometheus-client (the Prometheus project's own Python library) keeps the counters and
writes the text exposition format, so any Prometheus, Grafana Agent or OpenTelemetry
collector scrapes a replica as it scrapes anything else. Each app gets a registry of its
own (several apps in one process, as tests build them, do not share counters).

What is measured, by an ASGI middleware around the whole app (so refused and unrouted
requests count too), labelled by the *route template* (``/v1/indexes/{name}``), never by
the concrete path, whose index names would make the label set unbounded:

- ``lichen_http_requests_total{method, route, status}``;
- ``lichen_http_request_duration_seconds{method, route}``, a histogram; long-polls are
  the route ``/v1/indexes/{name}?wait`` so that their seconds of waiting do not drown the
  latency of the reads;
- ``lichen_http_request_bytes_total{route}`` and ``lichen_http_response_bytes_total{route}``:
  bodies in and out;
- ``lichen_merges_running`` and ``lichen_merges_waiting``: index rewrites in flight
  (:mod:`lichen.server.merge_queue`); ``lichen_long_polls_open``;
- ``lichen_changes_total{outcome}``: changes requests answered with a delta or 410.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["ServerMetrics", "MetricsMiddleware", "CONTENT_TYPE_LATEST"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ServerMetrics:
    """The metrics of one app (see the module docstring)."""

    def __init__(self, running: Callable[[], int], waiting: Callable[[], int], long_polls: Callable[[], int]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "lichen_http_requests", "HTTP requests answered, by route template and status.",
            ["method", "route", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "lichen_http_request_duration_seconds", "Time from a request's arrival to the end of its response.",
            ["method", "route"], buckets=_BUCKETS, registry=self.registry,
        )
        self.bytes_in = Counter(
            "lichen_http_request_bytes", "Request body bytes received.", ["route"], registry=self.registry
        )
        self.bytes_out = Counter(
            "lichen_http_response_bytes", "Response body bytes sent.", ["route"], registry=self.registry
        )
        self.changes = Counter(
            "lichen_changes", "Changes requests by outcome: a delta, or 410 (download the artifact).",
            ["outcome"], registry=self.registry,
        )
        Gauge("lichen_merges_running", "Index rewrites running.", registry=self.registry).set_function(running)
        Gauge("lichen_merges_waiting", "Index rewrites waiting for their turn.", registry=self.registry).set_function(
            waiting
        )
        Gauge("lichen_long_polls_open", "Long-polls waiting for an index to change.", registry=self.registry).set_function(
            long_polls
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _route_label(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if not path:
        return "unmatched"
    if path.endswith("/indexes/{name}") and scope.get("method") == "GET" and b"wait=" in scope.get("query_string", b""):
        return f"{path}?wait"
    return path


class MetricsMiddleware:
    """Counts every HTTP request of the wrapped app into :class:`ServerMetrics`."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        received = sent = 0

        async def counting_receive() -> MutableMapping[str, Any]:
            nonlocal received
            message = await receive()
            if message.get("type") == "http.request":
                received += len(message.get("body", b""))
            return message

        async def counting_send(message: MutableMapping[str, Any]) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            route = _route_label(scope)
            method = scope.get("method", "")
            m = self.metrics
            m.requests.labels(method, route, str(status)).inc()
            m.latency.labels(method, route).observe(time.perf_counter() - started)
            if received:
                m.bytes_in.labels(route).inc(received)
            if sent:
                m.bytes_out.labels(route).inc(sent)
