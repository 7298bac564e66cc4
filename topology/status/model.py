"""The status of a spec on a broker, computed from what the management API returned.

Pure: plain dictionaries in (the `GET /api/queues` rows and the bindings of each service
exchange), a `StatusReport` out. A count the API did not give is `None`: unknown, never 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from topology import naming
from topology.naming import MessageKind
from topology.spec.model import Message, Spec

# The columns `GET /api/queues/{vhost}` is asked for (nested ones with dots).
QUEUE_COLUMNS = (
    "name",
    "messages_ready",
    "messages_unacknowledged",
    "consumers",
    "message_stats.publish_details.rate",
    "message_stats.deliver_get_details.rate",
    "message_stats.ack_details.rate",
)


@dataclass(frozen=True)
class QueueState:
    """One queue as the broker reports it; `exists=False` is drift (the queue is missing)."""

    name: str
    exists: bool = True
    ready: int | None = None
    unacked: int | None = None
    consumers: int | None = None
    publish_rate: float | None = None
    deliver_rate: float | None = None
    ack_rate: float | None = None

    @property
    def messages(self) -> int | None:
        if self.ready is None or self.unacked is None:
            return None
        return self.ready + self.unacked

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "exists": self.exists,
            "ready": self.ready,
            "unacked": self.unacked,
            "consumers": self.consumers,
            "publish_rate": self.publish_rate,
            "deliver_rate": self.deliver_rate,
            "ack_rate": self.ack_rate,
        }


@dataclass(frozen=True)
class SubscriberStatus:
    """A subscriber (or the store: `service` is None) with its three queues."""

    name: str
    service: str | None
    queue: QueueState
    retry: QueueState  # tier 1 of its retry ladder
    dead_letter: QueueState
    further_tiers: tuple[QueueState, ...] = ()  # tiers 2..k of a ladder
    paused: bool = False  # a consumer's circuit breaker holds it paused

    @property
    def label(self) -> str:
        return self.name if self.service is None else f"{self.service}/{self.name}"

    @property
    def tiers(self) -> tuple[QueueState, ...]:
        return (self.retry, *self.further_tiers)

    @property
    def retrying(self) -> int | None:
        """Messages waiting in any tier of the ladder (None when a count is unknown)."""
        counts = [tier.messages for tier in self.tiers if tier.exists]
        return None if any(c is None for c in counts) else sum(c for c in counts if c is not None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "subscriber": self.name,
            "service": self.service,
            "queue": self.queue.to_dict(),
            "retry": self.retry.to_dict(),
            "retry_tiers": [tier.to_dict() for tier in self.tiers],
            "retrying": self.retrying,
            "paused": self.paused,
            "dead_letter": self.dead_letter.to_dict(),
        }


@dataclass(frozen=True)
class EventBinding:
    """Whether anything is bound to a declared event on its service exchange."""

    exchange: str
    message_class: str
    routing_key: str
    queues: tuple[str, ...]
    exchange_exists: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "exchange": self.exchange,
            "message": self.message_class,
            "routing_key": self.routing_key,
            "exchange_exists": self.exchange_exists,
            "bound_queues": list(self.queues),
        }


@dataclass(frozen=True)
class StatusReport:
    vhost: str
    subscribers: tuple[SubscriberStatus, ...]
    events: tuple[EventBinding, ...]
    warnings: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "vhost": self.vhost,
            "subscribers": [s.to_dict() for s in self.subscribers],
            "events": [e.to_dict() for e in self.events],
            "warnings": list(self.warnings),
        }


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _rate(row: Mapping[str, Any], name: str) -> float | None:
    stats = row.get("message_stats")
    if not isinstance(stats, Mapping):
        return None
    details = stats.get(f"{name}_details")
    if not isinstance(details, Mapping):
        return None
    rate = details.get("rate")
    return float(rate) if isinstance(rate, (int, float)) and not isinstance(rate, bool) else None


def queue_state(name: str, rows: Mapping[str, Mapping[str, Any]]) -> QueueState:
    row = rows.get(name)
    if row is None:
        return QueueState(name, exists=False)
    return QueueState(
        name,
        ready=_int(row.get("messages_ready")),
        unacked=_int(row.get("messages_unacknowledged")),
        consumers=_int(row.get("consumers")),
        publish_rate=_rate(row, "publish"),
        deliver_rate=_rate(row, "deliver_get"),
        ack_rate=_rate(row, "ack"),
    )


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: `*` is exactly one word, `#` zero or more."""
    return _match(tuple(pattern.split(".")), tuple(routing_key.split(".")))


@cache
def _match(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head == words[0]) and _match(rest, words[1:])


def build_status(
    spec: Spec,
    queue_rows: Iterable[Mapping[str, Any]],
    bindings: Mapping[str, Sequence[Mapping[str, Any]] | None],
) -> StatusReport:
    """`bindings` maps each service exchange to its bindings as a source (None: the exchange is missing)."""
    rows = {str(row.get("name")): row for row in queue_rows}
    org = spec.organization
    subscribers: list[SubscriberStatus] = []
    for sub in spec.subscribers():
        subscribers.append(_subscriber(sub.name, sub.service, sub.queue, rows, len(sub.retry.ladder())))
    store = spec.resolved_store()
    if store is not None:
        subscribers.append(_subscriber(store.queue, None, store.queue, rows, len(store.retry.ladder())))
    events: list[EventBinding] = []
    warnings: list[str] = []
    for service_name in sorted(spec.services):
        exchange = naming.exchange(org, service_name)
        exchange_bindings = bindings.get(exchange)
        service = spec.services[service_name]
        kinds: tuple[tuple[MessageKind, dict[str, Message]], ...] = (
            ("event", service.events),
            ("command", service.commands),
        )
        for kind, messages in kinds:
            for class_name in sorted(messages):
                version = messages[class_name].version
                routing_name = naming.routing_name(class_name, spec.layout)  # the layout's names, as compiled
                key = naming.routing_key(org, service_name, version, kind, routing_name)
                if exchange_bindings is None:
                    events.append(EventBinding(exchange, class_name, key, (), exchange_exists=False))
                    continue
                bound = sorted(
                    {
                        str(b.get("destination"))
                        for b in exchange_bindings
                        if topic_matches(str(b.get("routing_key", "")), key)
                    }
                )
                events.append(EventBinding(exchange, class_name, key, tuple(bound)))
    for sub_status in subscribers:
        for queue in (sub_status.queue, *sub_status.tiers, sub_status.dead_letter):
            if not queue.exists:
                warnings.append(f"queue {queue.name} is missing (drift): run `rabbitform plan`")
    for event in events:
        if not event.exchange_exists:
            warnings.append(f"exchange {event.exchange} is missing (drift): run `rabbitform plan`")
        elif not event.queues:
            warnings.append(
                f"nothing is bound to {event.message_class} ({event.routing_key}) on {event.exchange}: nobody consumes it"
            )
    return StatusReport(spec.vhost, tuple(subscribers), tuple(events), tuple(dict.fromkeys(warnings)))


def _subscriber(
    name: str, service: str | None, queue: str, rows: Mapping[str, Mapping[str, Any]], tiers: int = 1
) -> SubscriberStatus:
    retry, *further = (queue_state(tier, rows) for tier in naming.retry_tier_queues(queue, tiers))
    return SubscriberStatus(
        name,
        service,
        queue_state(queue, rows),
        retry,
        queue_state(naming.dead_letter_queue(queue), rows),
        tuple(further),
        paused=naming.paused_marker(queue) in rows,
    )


def check_problems(report: StatusReport, max_dead_letters: int = 0, require_consumers: bool = True) -> list[str]:
    """What makes `status --check` exit 2: dead letters above the limit, subscriber queues with
    no consumer (when required), missing queues. An unknown count is a problem too: a health
    check that cannot see must not say healthy."""
    problems: list[str] = []
    for sub in report.subscribers:
        dead = sub.dead_letter
        if not dead.exists:
            problems.append(f"{sub.label}: dead-letter queue {dead.name} is missing")
        elif dead.messages is None:
            problems.append(f"{sub.label}: dead-letter count of {dead.name} is unknown")
        elif dead.messages > max_dead_letters:
            problems.append(f"{sub.label}: {dead.messages} dead letter(s) in {dead.name} (allowed: {max_dead_letters})")
        if not sub.queue.exists:
            problems.append(f"{sub.label}: queue {sub.queue.name} is missing")
        elif require_consumers and sub.queue.consumers is None:
            problems.append(f"{sub.label}: consumer count of {sub.queue.name} is unknown")
        elif sub.paused:
            problems.append(f"{sub.label}: paused by its circuit breaker (its messages wait in {sub.queue.name})")
        elif require_consumers and sub.queue.consumers == 0:
            problems.append(f"{sub.label}: no consumer on {sub.queue.name}")
    return problems
