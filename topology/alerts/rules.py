"""Prometheus alerting rules for one spec's bus, from the spec and the naming alone (pure).

Two sources, each where it fits:
- the broker's own metrics (the rabbitmq_prometheus plugin) for what a queue knows: dead
  letters waiting, their growth, the oldest one's age, a subscriber queue without a consumer.
  RabbitMQ 3.10's default `/metrics` is aggregated (no queue label), so per-queue series come
  from `/metrics/detailed?family=queue_coarse_metrics&family=queue_consumer_count&family=queue_metrics`
  (3.10+, names `rabbitmq_detailed_queue_*`, the default here) or from `/metrics/per-object`
  (names `rabbitmq_queue_*`: `broker_metrics="per-object"`);
- the runtime's metrics (`rabbitform consume --metrics-port`) for what only the consumer knows:
  retries, dead-lettering, the circuit breaker, reconnects.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any, Literal

import yaml

from topology import naming
from topology.spec.model import Spec

BrokerMetrics = Literal["detailed", "per-object"]
BROKER_METRICS: dict[str, str] = {"detailed": "rabbitmq_detailed_queue_", "per-object": "rabbitmq_queue_"}
CIRCUIT_OPEN = 2  # rabbitform_circuit_breaker_state: 0 closed, 1 half-open, 2 open


@dataclass(frozen=True)
class Thresholds:
    """When each alert fires; durations in Prometheus' notation (`5m`, `1h`)."""

    dead_letters: int = 0  # more than this many dead letters in one subscriber's queue ...
    dead_letters_for: str = "5m"  # ... for this long
    growth_window: str = "15m"  # dead letters grew over this window
    oldest_age: str = "1h"  # the oldest dead letter is older than this
    no_consumer_for: str = "5m"  # a subscriber queue without a consumer for this long
    retry_rate: float = 1.0  # retries per second per subscriber (over 5 minutes)
    circuit_open_for: str = "1m"  # a circuit breaker open this long
    reconnects: int = 5  # more reconnects than this ...
    reconnect_window: str = "10m"  # ... in this window, per process and component

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if item.type == "str" and not _DURATION.fullmatch(str(value)):
                raise ValueError(f"{item.name}: {value!r} is not a Prometheus duration (e.g. 30s, 5m, 1h)")
            if item.type in ("int", "float") and value < 0:
                raise ValueError(f"{item.name} must be >= 0")


_DURATION = re.compile(r"(\d+(ms|s|m|h|d|w|y))+")


def seconds(duration: str) -> int:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    return int(sum(int(n) * units[u] for n, u in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", duration)))


def _quote(value: str) -> str:
    """A PromQL string literal (double-quoted)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _alternation(names: Iterable[str]) -> str:
    """A label regex matching exactly these names (RE2, anchored by Prometheus)."""
    return _quote("|".join(re.escape(name) for name in sorted(set(names))))


def _store_handler(spec: Spec) -> list[str]:
    store = spec.resolved_store()
    if store is None or not store.handler:
        return []
    return [store.handler.rsplit(":", 1)[-1].rsplit(".", 1)[-1]]


def alert_rules(
    spec: Spec, thresholds: Thresholds | None = None, broker_metrics: BrokerMetrics = "detailed"
) -> dict[str, Any]:
    """The rules file (as data) for `spec`: one group, named after the organization and vhost."""
    limits = thresholds or Thresholds()
    prefix = BROKER_METRICS[broker_metrics]
    subscribers = list(spec.subscribers())
    store = spec.resolved_store()
    queues = [sub.queue for sub in subscribers] + ([store.queue] if store else [])
    dead = [naming.dead_letter_queue(queue) for queue in queues]
    handlers = [sub.name for sub in subscribers] + _store_handler(spec)
    vhost = _quote(spec.vhost)
    on_dead = f"vhost={vhost}, queue=~{_alternation(dead)}"
    on_main = f"vhost={vhost}, queue=~{_alternation(queues)}"
    on_handlers = f"subscriber=~{_alternation(handlers)}"
    rules: list[dict[str, Any]] = [
        _rule(
            "RabbitformDeadLettersPresent",
            f"max by (vhost, queue) ({prefix}messages{{{on_dead}}}) > {limits.dead_letters}",
            limits.dead_letters_for,
            "warning",
            "{{ $labels.queue }} holds {{ $value }} dead letter(s)",
            "A subscriber's handler gave up on these messages. See them with `rabbitform dlq list` or the "
            "console (`rabbitform ui`), fix the cause, then replay them.",
        ),
        _rule(
            "RabbitformDeadLettersGrowing",
            f"delta({prefix}messages{{{on_dead}}}[{limits.growth_window}]) > 0",
            "0m",
            "warning",
            f"{{{{ $labels.queue }}}} gained {{{{ $value }}}} dead letter(s) in {limits.growth_window}",
            "Messages keep failing for this subscriber now: look at the newest dead letters' error type.",
        ),
        _rule(
            "RabbitformHandlerDeadLettering",
            f"sum by (subscriber) (increase(rabbitform_dead_lettered_total{{{on_handlers}}}[{limits.growth_window}])) > 0",
            "0m",
            "warning",
            f"{{{{ $labels.subscriber }}}} dead-lettered {{{{ $value }}}} message(s) in {limits.growth_window}",
            "Counted by the consumer (rabbitform consume --metrics-port), by reason.",
        ),
        _rule(
            "RabbitformOldestDeadLetterOld",
            f"(time() - min by (vhost, queue) ({prefix}head_message_timestamp{{{on_dead}}}) > {seconds(limits.oldest_age)})"
            f" and on (vhost, queue) (max by (vhost, queue) ({prefix}messages{{{on_dead}}}) > 0)",
            "0m",
            "warning",
            f"the oldest dead letter in {{{{ $labels.queue }}}} is older than {limits.oldest_age}",
            "Age from the head message's AMQP timestamp (the event's occurred_on, set by the runtime's "
            "publisher): it overstates the time since dead-lettering by the retries' delay. Needs the "
            "queue_metrics family (detailed) or per-object metrics.",
        ),
        _rule(
            "RabbitformDeadLettersNotDrained",
            f"min_over_time(max by (vhost, queue) ({prefix}messages{{{on_dead}}})[{limits.oldest_age}:1m]) > 0",
            "0m",
            "warning",
            f"{{{{ $labels.queue }}}} has held dead letters for {limits.oldest_age} without being emptied",
            "A lower bound of the oldest dead letter's age from the queue length alone (no timestamp needed).",
        ),
        _rule(
            "RabbitformSubscriberWithoutConsumer",
            f"max by (vhost, queue) ({prefix}consumers{{{on_main}}}) == 0",
            limits.no_consumer_for,
            "critical",
            "nothing consumes {{ $labels.queue }}",
            "The subscriber's service is down or cannot connect: its messages wait in the queue.",
        ),
        _rule(
            "RabbitformHighRetryRate",
            f"sum by (subscriber) (rate(rabbitform_retry_attempts_total{{{on_handlers}}}[5m])) > {limits.retry_rate:g}",
            "5m",
            "warning",
            "{{ $labels.subscriber }} retries {{ $value | humanize }} message(s) per second",
            "Failures the retry policy absorbs so far; dead letters follow once the retries run out.",
        ),
        _rule(
            "RabbitformCircuitBreakerOpen",
            f"max by (subscriber) (rabbitform_circuit_breaker_state{{{on_handlers}}}) == {CIRCUIT_OPEN}",
            limits.circuit_open_for,
            "critical",
            "the circuit breaker of {{ $labels.subscriber }} is open",
            "The subscriber stopped consuming after repeated failures of a dependency.",
        ),
        _rule(
            "RabbitformReconnectStorm",
            f"sum by (instance, component) (increase(rabbitform_reconnects_total[{limits.reconnect_window}]))"
            f" > {limits.reconnects}",
            "0m",
            "warning",
            f"{{{{ $labels.instance }}}} {{{{ $labels.component }}}} reconnected {{{{ $value }}}} times in "
            f"{limits.reconnect_window}",
            "The connection to the broker keeps dropping: check the broker, the network, heartbeats.",
        ),
    ]
    name = f"rabbitform-{spec.organization}-{spec.vhost}"
    return {"groups": [{"name": name, "rules": rules}]}


def _rule(alert: str, expr: str, duration: str, severity: str, summary: str, description: str) -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": alert, "expr": expr}
    if duration not in ("0m", "0s"):
        rule["for"] = duration
    rule["labels"] = {"severity": severity}
    rule["annotations"] = {"summary": summary, "description": description}
    return rule


def render_rules(document: dict[str, Any], header: str = "") -> str:
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=1000)
    return header + body
