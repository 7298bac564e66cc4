"""OpenTelemetry traces (optional extra: `pip install rabbitform[tracing]`).

A PRODUCER span per published message, whose context travels in the W3C `traceparent` header
(kept through retries and dead letters, since the runtime copies a delivery's headers), and a
CONSUMER span per handler call, a child of that context. Nothing is recorded unless
`enable_tracing()` was called; without OpenTelemetry installed it raises a clear error.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from bus_runtime.telemetry import hooks

try:
    from opentelemetry import context, trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # pragma: no cover - exercised where the extra is absent
    trace = None  # type: ignore[assignment]

TRACER_NAME = "rabbitform.bus_runtime"


class OpenTelemetryTracing:
    """An `Instrumentation` that opens spans and propagates `traceparent`."""

    def __init__(self, tracer_provider: Any = None) -> None:
        if trace is None:
            from bus_runtime.errors import BusError

            raise BusError("tracing needs OpenTelemetry: pip install 'rabbitform[tracing]'")
        self.tracer = trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)
        self.propagator = TraceContextTextMapPropagator()

    def publishing(self, exchange: str, routing_key: str, message_type: str, headers: MutableMapping[str, Any]) -> None:
        parent = self.propagator.extract(headers) if "traceparent" in headers else None
        span = self.tracer.start_span(
            f"{exchange} publish",
            context=parent,
            kind=trace.SpanKind.PRODUCER,
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.operation.type": "publish",
                "messaging.destination.name": exchange,
                "messaging.rabbitmq.destination.routing_key": routing_key,
                "messaging.message.type": message_type,
            },
        )
        carrier: dict[str, str] = {}
        self.propagator.inject(carrier, context=trace.set_span_in_context(span))
        headers.update(carrier)
        span.end()

    def handler_started(self, subscriber: str, headers: Mapping[str, Any]) -> Any:
        carrier = {k: str(v) for k, v in headers.items() if k in ("traceparent", "tracestate")}
        parent = self.propagator.extract(carrier) if carrier else None
        span = self.tracer.start_span(
            f"{subscriber} process",
            context=parent,
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.operation.type": "process",
                "messaging.consumer.group.name": subscriber,
            },
        )
        token = context.attach(trace.set_span_in_context(span))
        return span, token

    def handler_finished(self, token: Any, subscriber: str, event: str, outcome: str, seconds: float) -> None:
        span, attached = token
        span.set_attribute("rabbitform.outcome", outcome)
        span.set_attribute("messaging.message.type", event)
        if outcome != "ack":
            span.set_status(trace.Status(trace.StatusCode.ERROR, outcome))
        context.detach(attached)
        span.end()

    def published(self, exchange: str, confirmed: int, failed: int, reason: str | None) -> None:
        return None

    def reconnected(self, component: str, cause: str) -> None:
        return None


def enable_tracing(tracer_provider: Any = None) -> OpenTelemetryTracing:
    """Trace publishes and handler calls from now on (with the global tracer provider by default)."""
    tracing = OpenTelemetryTracing(tracer_provider)
    hooks.install(tracing)
    return tracing
