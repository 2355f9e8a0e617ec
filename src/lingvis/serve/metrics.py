"""Prometheus metrics (GET /metrics, text format 0.0.4): requests, tokens, queue depth, batch sizes, latencies.

Request counts and latencies come from an ASGI middleware (labelled by route template, so cardinality stays
bounded); tokens and time to first token from each text job; queue depth, running sequences and batch sizes
are read from the models' engines when Prometheus scrapes. Each app has its own registry.
"""
from __future__ import annotations

import time

from .._optional import require

prom = require("prometheus_client", "the server's /metrics endpoint")
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily  # noqa: E402

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
CONTENT_TYPE = prom.CONTENT_TYPE_LATEST


def batch_histogram(sizes: dict[int, int]) -> tuple[list[tuple[str, float]], float]:
    """Cumulative Prometheus buckets and the sum of a {batch size: count} distribution."""
    buckets = [(str(float(le)), float(sum(c for s, c in sizes.items() if s <= le))) for le in BATCH_BUCKETS]
    buckets.append(("+Inf", float(sum(sizes.values()))))
    return buckets, float(sum(s * c for s, c in sizes.items()))


class EngineCollector:
    """Per-model gauges and the batch-size histogram, read from the adapters at scrape time."""

    def __init__(self, hub):
        self.hub = hub

    def describe(self):
        return []  # collected lazily

    def collect(self):
        queue = GaugeMetricFamily("lingvis_queue_depth", "Requests or sequences waiting for the model",
                                  labels=["model"])
        batch = HistogramMetricFamily("lingvis_batch_size", "Sequences per batched model call (rows of each "
                                      "decode step for causal LMs; rows of each batch for translation and "
                                      "captioning)", labels=["model"])
        for name, adapter in self.hub.adapters.items():
            queue.add_metric([name], float(adapter.queue_depth()))
            sizes = adapter.batch_sizes()
            if sizes is not None:
                buckets, total = batch_histogram(sizes)
                batch.add_metric([name], buckets, total)
        yield queue
        yield batch


class Metrics:
    def __init__(self, hub):
        r = self.registry = prom.CollectorRegistry(auto_describe=True)
        self.requests = prom.Counter("lingvis_requests", "HTTP requests by route, method and status code",
                                     ["route", "method", "status"], registry=r)
        self.latency = prom.Histogram("lingvis_request_duration_seconds", "Time from a request's arrival to the "
                                      "last byte of its response (streams included)", ["route", "method"],
                                      buckets=LATENCY_BUCKETS, registry=r)
        self.in_progress = prom.Gauge("lingvis_requests_in_progress", "HTTP requests being served", registry=r)
        self.prompt_tokens = prom.Counter("lingvis_prompt_tokens", "Prompt (source) tokens of text generation "
                                          "requests", ["model"], registry=r)
        self.generation_tokens = prom.Counter("lingvis_generation_tokens", "Tokens generated for completions, "
                                              "chat and translation", ["model"], registry=r)
        self.ttft = prom.Histogram("lingvis_time_to_first_token_seconds", "Time from accepting a text "
                                   "generation request to its first generated token", ["model"],
                                   buckets=LATENCY_BUCKETS, registry=r)
        r.register(EngineCollector(hub))

    def observer(self, model: str) -> "JobObserver":
        return JobObserver(self, model)

    def render(self) -> bytes:
        return prom.generate_latest(self.registry)


class JobObserver:
    """Told by a `TextJob` when its first token arrives and when it ends (with its usage)."""

    def __init__(self, metrics: Metrics, model: str):
        self.metrics, self.model, self.start = metrics, model, time.perf_counter()
        self.seen_token = self.counted = False

    def first_token(self) -> None:
        if not self.seen_token:
            self.seen_token = True
            self.metrics.ttft.labels(self.model).observe(time.perf_counter() - self.start)

    def done(self, usage: dict) -> None:
        if not self.counted:
            self.counted = True
            self.metrics.prompt_tokens.labels(self.model).inc(usage["prompt_tokens"])
            self.metrics.generation_tokens.labels(self.model).inc(usage["completion_tokens"])


class RequestMetrics:
    """ASGI middleware: count every HTTP request by route template, method and status, and time it to the
    end of its response body. A request refused before routing (413) is named by its path when that is one
    of the app's fixed route `paths`; anything else unrouted is "unmatched"."""

    def __init__(self, app, metrics: Metrics, paths: set[str]):
        self.app, self.metrics, self.paths = app, metrics, paths

    def _route(self, scope) -> str:
        path = getattr(scope.get("route"), "path", None)
        if path is None and scope.get("path") in self.paths:
            path = scope["path"]
        return path or "unmatched"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [500]

        async def send_and_note(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        self.metrics.in_progress.inc()
        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self.metrics.in_progress.dec()
            route, method = self._route(scope), scope.get("method", "")
            self.metrics.requests.labels(route, method, str(status[0])).inc()
            self.metrics.latency.labels(route, method).observe(time.perf_counter() - start)
