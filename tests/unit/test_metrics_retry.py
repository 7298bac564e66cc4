"""The retry, dead-letter and circuit-breaker metrics, counted on the in-memory broker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from bus_runtime.memory import InMemoryBroker
from bus_runtime.telemetry import hooks
from bus_runtime.telemetry.metrics import PrometheusMetrics, enable_metrics
from topology.spec.loader import parse_spec

from . import memory_handlers

SPEC = """organization: alice
services:
  petisco:
    events:
      UserCreated:
        subscribers:
          audit_handler:
            handler: "tests.unit.memory_handlers:always_fails"
            retry: {delays_ms: [10, 20], max_retries: 3}
          pay_handler:
            handler: "tests.unit.memory_handlers:declines"
            retry: {dead_letter_on: [PaymentDeclined]}
          bill_handler:
            handler: "tests.unit.memory_handlers:needs_dependency"
            retry: {delay_ms: 100000}
            circuit_breaker: {failures: 1, window_s: 1, pause_s: 5}
"""


@pytest.fixture
def metrics() -> Iterator[PrometheusMetrics]:
    instrumentation = enable_metrics(CollectorRegistry())
    yield instrumentation
    hooks.uninstall(instrumentation)


def value(metrics: PrometheusMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_attempts_by_tier_dead_letters_by_reason_and_the_breaker(metrics: PrometheusMetrics) -> None:
    memory_handlers.dependency_up["value"] = False
    broker = InMemoryBroker.from_spec(parse_spec(SPEC))
    broker.consumer_from_spec()
    broker.event_bus("petisco").publish(memory_handlers.UserCreated(user_id="1"))
    broker.advance(1000)
    attempts = "rabbitform_retry_attempts_total"
    assert value(metrics, attempts, subscriber="audit_handler", tier="1") == 1
    assert value(metrics, attempts, subscriber="audit_handler", tier="2") == 2
    dead = "rabbitform_dead_lettered_total"
    assert value(metrics, dead, subscriber="audit_handler", reason="max_retries") == 1
    assert value(metrics, dead, subscriber="pay_handler", reason="non_retryable") == 1
    assert value(metrics, "rabbitform_circuit_breaker_state", subscriber="bill_handler") == 2
    moves = "rabbitform_circuit_breaker_transitions_total"
    assert value(metrics, moves, subscriber="bill_handler", to="open") == 1
