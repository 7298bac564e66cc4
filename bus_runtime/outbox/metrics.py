"""The relay's Prometheus metrics (names agreed for the runtime; `rabbitform[metrics]`)."""

from __future__ import annotations

from typing import Any

from bus_runtime.errors import BusError


class OutboxMetrics:
    """`rabbitform_outbox_due`, `rabbitform_outbox_published` (a counter: `_total` on
    exposition) and `rabbitform_outbox_oldest_due_age_seconds`."""

    def __init__(self, registry: Any = None) -> None:
        try:
            from prometheus_client import REGISTRY, Counter, Gauge
        except ImportError:  # pragma: no cover - exercised where the extra is absent
            raise BusError("metrics need prometheus_client: pip install 'rabbitform[metrics]'") from None
        self.registry = registry if registry is not None else REGISTRY
        self.due = Gauge("rabbitform_outbox_due", "Outbox messages committed and not yet sent", registry=self.registry)
        self.published = Counter(
            "rabbitform_outbox_published", "Outbox messages the broker confirmed", registry=self.registry
        )
        self.oldest_due_age = Gauge(
            "rabbitform_outbox_oldest_due_age_seconds",
            "Age of the oldest outbox message not yet sent (0 when none is due)",
            registry=self.registry,
        )

    def observe(self, due: int, oldest_age: float) -> None:
        self.due.set(due)
        self.oldest_due_age.set(oldest_age)

    def sent(self, count: int) -> None:
        self.published.inc(count)
