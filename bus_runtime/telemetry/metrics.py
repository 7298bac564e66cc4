"""Prometheus metrics of a service's bus (optional extra: `pip install rabbitform[metrics]`).

```python
from bus_runtime.telemetry.metrics import serve_metrics
serve_metrics(9464)        # http://127.0.0.1:9464/metrics; or enable_metrics(registry) for your own server
```
`rabbitform consume --metrics-port 9464` does the same.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from bus_runtime.telemetry import hooks

try:
    import prometheus_client
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
except ImportError:  # pragma: no cover - exercised where the extra is absent
    prometheus_client = None  # type: ignore[assignment]

# The dead-letter header says `retries_exhausted`; the metric says `max_retries`, as alert rules
# and dashboards agreed to read it. Other reasons are the header's.
METRIC_REASONS = {"retries_exhausted": "max_retries"}
STATE_VALUES = {"closed": 0, "half_open": 1, "open": 2}

BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _require() -> None:
    if prometheus_client is None:
        from bus_runtime.errors import BusError

        raise BusError("metrics need prometheus_client: pip install 'rabbitform[metrics]'")


class PrometheusMetrics:
    """An `Instrumentation` that counts into Prometheus metrics (`rabbitform_*`)."""

    def __init__(self, registry: Any = None) -> None:
        _require()
        self.registry = registry or CollectorRegistry()
        self.handled = Counter(
            "rabbitform_messages_handled",
            "Deliveries handled, by subscriber, event and outcome (ack, retry, dead_letter)",
            ["subscriber", "event", "outcome"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "rabbitform_handler_duration_seconds",
            "Handler run time",
            ["subscriber", "event"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "rabbitform_handlers_in_flight", "Handler calls running now", ["subscriber"], registry=self.registry
        )
        self.reconnects = Counter(
            "rabbitform_reconnects", "Connections re-established after a loss", ["component"], registry=self.registry
        )
        self.confirmed = Counter(
            "rabbitform_publish_confirmed", "Messages the broker confirmed", ["exchange"], registry=self.registry
        )
        self.failed = Counter(
            "rabbitform_publish_failed",
            "Messages not confirmed (nacked, timed out, unroutable, connection lost)",
            ["exchange", "reason"],
            registry=self.registry,
        )

        self.retry_attempts = Counter(
            "rabbitform_retry_attempts",
            "Failures republished to a retry tier (tier 1..k of the subscriber's ladder)",
            ["subscriber", "tier"],
            registry=self.registry,
        )
        self.dead_lettered_total = Counter(
            "rabbitform_dead_lettered",
            "Messages the consumer dead-lettered, by reason (max_retries, non_retryable, poison_message)",
            ["subscriber", "reason"],
            registry=self.registry,
        )
        self.breaker_state = Gauge(
            "rabbitform_circuit_breaker_state",
            "A subscriber's circuit breaker: 0 closed, 1 half-open, 2 open",
            ["subscriber"],
            registry=self.registry,
        )
        self.breaker_transitions = Counter(
            "rabbitform_circuit_breaker_transitions",
            "Circuit breaker moves, by the state moved to (closed, half_open, open)",
            ["subscriber", "to"],
            registry=self.registry,
        )

    def retried(self, subscriber: str, tier: int) -> None:
        self.retry_attempts.labels(subscriber, str(tier)).inc()

    def dead_lettered(self, subscriber: str, reason: str) -> None:
        self.dead_lettered_total.labels(subscriber, METRIC_REASONS.get(reason, reason)).inc()

    def breaker_moved(self, subscriber: str, to: str) -> None:
        self.breaker_state.labels(subscriber).set(STATE_VALUES.get(to, 0))
        self.breaker_transitions.labels(subscriber, to).inc()

    def handler_started(self, subscriber: str, headers: Mapping[str, Any]) -> Any:
        self.in_flight.labels(subscriber).inc()
        return None

    def handler_finished(self, token: Any, subscriber: str, event: str, outcome: str, seconds: float) -> None:
        self.in_flight.labels(subscriber).dec()
        self.handled.labels(subscriber, event, outcome).inc()
        self.duration.labels(subscriber, event).observe(seconds)

    def publishing(self, exchange: str, routing_key: str, message_type: str, headers: MutableMapping[str, Any]) -> None:
        return None

    def published(self, exchange: str, confirmed: int, failed: int, reason: str | None) -> None:
        if confirmed:
            self.confirmed.labels(exchange).inc(confirmed)
        if failed:
            self.failed.labels(exchange, reason or "unknown").inc(failed)

    def reconnected(self, component: str, cause: str) -> None:
        self.reconnects.labels(component).inc()


def enable_metrics(registry: Any = None) -> PrometheusMetrics:
    """Count into `registry` (a new one by default) from now on; returns the instrumentation."""
    metrics = PrometheusMetrics(registry)
    hooks.install(metrics)
    return metrics


def serve_metrics(port: int, addr: str = "127.0.0.1", registry: Any = None) -> PrometheusMetrics:
    """Enable metrics and serve them at http://addr:port/metrics (a daemon thread)."""
    metrics = enable_metrics(registry)
    prometheus_client.start_http_server(port, addr=addr, registry=metrics.registry)
    return metrics
