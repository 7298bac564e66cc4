"""Metrics and traces, observed through the in-memory broker (the same dispatch as on RabbitMQ)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from meiga import Error, Failure, Result, isSuccess
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry

from bus_runtime import Event, EventSubscriber
from bus_runtime.memory import InMemoryBroker
from bus_runtime.telemetry import hooks
from bus_runtime.telemetry.metrics import PrometheusMetrics, enable_metrics
from bus_runtime.telemetry.tracing import OpenTelemetryTracing, enable_tracing

ALICE = Path(__file__).resolve().parents[2] / "specs" / "alice.yaml"


class UserCreated(Event):
    user_id: str


class Bounce(Error):
    pass


def send_mail_handler(event: UserCreated) -> Result[bool, Error]:
    return Failure(Bounce()) if event.user_id == "bounce" else isSuccess


@pytest.fixture
def metrics() -> Iterator[PrometheusMetrics]:
    instrumentation = enable_metrics(CollectorRegistry())
    yield instrumentation
    hooks.uninstall(instrumentation)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentation = enable_tracing(provider)
    yield exporter
    hooks.uninstall(instrumentation)


def run(messages: list[str], max_retries: int = 1) -> InMemoryBroker:
    broker = InMemoryBroker.from_spec(ALICE)
    broker.consumer("petisco", [EventSubscriber(UserCreated, [send_mail_handler])], max_retries=max_retries)
    broker.event_bus("petisco").publish([UserCreated(user_id=m) for m in messages])
    broker.run_until_idle()
    return broker


def sample(metrics: PrometheusMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_handled_retried_and_dead_lettered_are_counted_per_subscriber(metrics: PrometheusMetrics) -> None:
    run(["ok", "bounce"], max_retries=1)
    labels = {"subscriber": "send_mail_handler", "event": "user.created"}
    assert sample(metrics, "rabbitform_messages_handled_total", **labels, outcome="ack") == 1
    assert sample(metrics, "rabbitform_messages_handled_total", **labels, outcome="retry") == 1
    assert sample(metrics, "rabbitform_messages_handled_total", **labels, outcome="dead_letter") == 1
    assert sample(metrics, "rabbitform_handler_duration_seconds_count", **labels) == 3
    assert sample(metrics, "rabbitform_handlers_in_flight", subscriber="send_mail_handler") == 0


def test_counters_stay_untouched_once_uninstalled(metrics: PrometheusMetrics) -> None:
    hooks.uninstall(metrics)
    run(["ok"])
    assert not hooks.active()
    assert (
        sample(
            metrics,
            "rabbitform_messages_handled_total",
            subscriber="send_mail_handler",
            event="user.created",
            outcome="ack",
        )
        == 0
    )


def test_publish_and_handler_spans_are_linked_through_traceparent(spans: InMemorySpanExporter) -> None:
    broker = run(["bounce"], max_retries=1)
    finished = spans.get_finished_spans()
    [publish] = [s for s in finished if s.kind == SpanKind.PRODUCER]
    handler_spans = [s for s in finished if s.kind == SpanKind.CONSUMER]
    assert len(handler_spans) == 2  # the first call and its retry
    for span in handler_spans:
        assert span.parent is not None and span.parent.span_id == publish.context.span_id
        assert span.context.trace_id == publish.context.trace_id
    assert [s.attributes["rabbitform.outcome"] for s in handler_spans] == ["retry", "dead_letter"]
    [dead] = broker.messages("dead_letter.alice.petisco.1.event.user.created.send_mail_handler")
    assert dead.headers["traceparent"].split("-")[1] == format(publish.context.trace_id, "032x")


def test_a_callers_traceparent_is_the_publish_spans_parent(spans: InMemorySpanExporter) -> None:
    broker = InMemoryBroker.from_spec(ALICE)
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    broker.event_bus("petisco").publish(UserCreated(user_id="1"), headers={"traceparent": parent})
    [publish] = spans.get_finished_spans()
    assert format(publish.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"


def test_instrumentations_are_optional_extras() -> None:
    assert isinstance(OpenTelemetryTracing(TracerProvider()), OpenTelemetryTracing)
    assert not hooks.active()
