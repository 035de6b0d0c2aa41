"""The service's Prometheus metrics, in a registry of its own (one per app)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    """Requests, latencies, errors, in-flight requests, micro-batch sizes and queueing, gallery size."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "siamese_requests", "HTTP requests by endpoint and status", ["endpoint", "status"], registry=r
        )
        self.errors = Counter(
            "siamese_errors", "responses with a status of 400 or more", ["endpoint", "status"], registry=r
        )
        self.latency = Histogram(
            "siamese_request_seconds", "request latency", ["endpoint"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.in_flight = Gauge("siamese_requests_in_flight", "requests being served", registry=r)
        self.rejected = Counter(
            "siamese_rejected", "requests refused (503) beyond the concurrency limit", registry=r
        )
        self.batch = Histogram(
            "siamese_batch_size",
            "items per batch of a worker: images per forward pass (inference), queries per search (search)",
            ["worker"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.queued = Histogram(
            "siamese_queue_seconds",
            "wait of a batch's oldest item before the batch runs",
            ["worker"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.gallery = Gauge(
            "siamese_gallery_identities", "identities enrolled in the served gallery", registry=r
        )

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)
        if status >= 400:
            self.errors.labels(endpoint, str(status)).inc()

    def batch_observer(self, worker: str) -> Callable[[int, float], None]:
        """What a worker calls after each batch: (items, seconds its oldest item waited)."""

        def observe(items: int, waited: float) -> None:
            self.batch.labels(worker).observe(items)
            self.queued.labels(worker).observe(waited)

        return observe

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
