"""The consumer's retry decision, as a pure function.

After a handler ran (or a body failed to parse), decide: ack it, send it to
`retry.<org>.<service>` with routing key `retry.<queue>` (the queue's TTL brings it back to
that queue alone), or send it to `dead_letter.<queue>` with headers that say why. The
RabbitMQ consumer and the in-memory broker both call this, so their behaviour cannot drift.

Retries are counted in a header of our own: brokers since 3.13/4.0 ignore a client's `x-death`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from topology import naming

HEADER_PREFIX = "rabbitform-"
RETRY_COUNT = "rabbitform-retry-count"
ERROR_TYPE = "rabbitform-error-type"
ERROR_MESSAGE = "rabbitform-error-message"
HANDLER = "rabbitform-handler"
ORIGINAL_QUEUE = "rabbitform-original-queue"
ORIGINAL_ROUTING_KEY = "rabbitform-original-routing-key"
FIRST_FAILURE_AT = "rabbitform-first-failure-at"
LAST_FAILURE_AT = "rabbitform-last-failure-at"
DEAD_LETTER_REASON = "rabbitform-dead-letter-reason"

REASON_RETRIES_EXHAUSTED = "retries_exhausted"
REASON_POISON = "poison_message"
REASON_DELIVERY_LIMIT = "delivery_limit"  # the broker's own reason, from a quorum queue's x-delivery-limit

MAX_ERROR_MESSAGE = 1000  # keep headers small: a stack of reasons must not bloat every retry

Action = Literal["ack", "retry", "dead_letter"]


@dataclass(frozen=True)
class Failure:
    """Why a delivery failed: an error type name and a message."""

    error_type: str
    message: str
    poison: bool = False  # no retry can fix it (unparsable body, unexpected type)


@dataclass(frozen=True)
class Delivery:
    """What the decision needs to know about one delivery."""

    organization: str
    service: str
    queue: str
    handler: str
    routing_key: str
    headers: Mapping[str, Any] = field(default_factory=dict)
    layout: naming.Layout = naming.DEFAULT_LAYOUT
    store: bool = False  # the store's retries travel by the layout's store route


@dataclass(frozen=True)
class Decision:
    """What to do with a delivery. For `retry` and `dead_letter`, republish the same body to
    `exchange` with `routing_key` and `headers` (confirmed), then ack the original."""

    action: Action
    exchange: str = ""
    routing_key: str = ""
    headers: Mapping[str, Any] = field(default_factory=dict)


ACK = Decision("ack")


def retry_count(headers: Mapping[str, Any] | None) -> int:
    """How many times this message was retried already (a malformed header counts as 0)."""
    value = (headers or {}).get(RETRY_COUNT, 0)
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


def decide(delivery: Delivery, failure: Failure | None, max_retries: int, now: datetime) -> Decision:
    """Ack on success; retry while fewer than `max_retries` retries were made; else dead-letter.

    `max_retries=N` means at most N+1 handler calls. Poison messages go to the dead-letter
    queue at once.
    """
    if failure is None:
        return ACK
    count = retry_count(delivery.headers)
    headers = _failure_headers(delivery, failure, now)
    if not failure.poison and count < max_retries:
        headers[RETRY_COUNT] = count + 1
        return Decision(
            "retry",
            exchange=naming.store_retry_exchange(delivery.organization, delivery.service, delivery.layout)
            if delivery.store
            else naming.retry_exchange(delivery.organization, delivery.service),
            routing_key=naming.retry_queue(delivery.queue),
            headers=headers,
        )
    headers[RETRY_COUNT] = count
    headers[DEAD_LETTER_REASON] = REASON_POISON if failure.poison else REASON_RETRIES_EXHAUSTED
    return Decision(
        "dead_letter",
        exchange=naming.dead_letter_exchange(delivery.organization, delivery.service),
        routing_key=naming.dead_letter_queue(delivery.queue),
        headers=headers,
    )


def _failure_headers(delivery: Delivery, failure: Failure, now: datetime) -> dict[str, Any]:
    """The delivery's headers (caller headers such as `traceparent` travel on) plus ours."""
    headers = dict(delivery.headers)
    stamp = now.isoformat()
    headers.setdefault(FIRST_FAILURE_AT, stamp)
    headers.setdefault(ORIGINAL_ROUTING_KEY, delivery.routing_key)
    headers[LAST_FAILURE_AT] = stamp
    headers[ORIGINAL_QUEUE] = delivery.queue
    headers[HANDLER] = delivery.handler
    headers[ERROR_TYPE] = failure.error_type
    headers[ERROR_MESSAGE] = failure.message[:MAX_ERROR_MESSAGE]
    return headers


def dead_letter_reason(headers: Mapping[str, Any] | None) -> str | None:
    """Why a message in a dead-letter queue is there, whoever put it there.

    Our consumer writes `rabbitform-dead-letter-reason`. A quorum queue whose `x-delivery-limit`
    ran out (a consumer crashing on the message, a requeue loop) dead-letters it itself, with
    only the broker's `x-death` reason: `delivery_limit` reads like an exhausted retry, and
    other broker reasons (`rejected`, `expired`, `maxlen`) come through as they are.
    """
    headers = headers or {}
    ours = headers.get(DEAD_LETTER_REASON)
    if ours:
        return str(ours.decode() if isinstance(ours, bytes) else ours)
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], Mapping):
        reason = deaths[0].get("reason")
        if reason:
            return str(reason.decode() if isinstance(reason, bytes) else reason)
    reason = headers.get("x-first-death-reason")
    return str(reason) if reason else None
