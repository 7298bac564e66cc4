"""The consumer's retry decision, as a pure function.

After a handler ran (or a body failed to parse), decide: ack it, send retry k to
`retry.<org>.<service>` with the routing key of its ladder's tier (`retry.<queue>`, then
`retry.<queue>.<tier>`; the tier's TTL brings it back to that queue alone), or send it to
`dead_letter.<queue>` with headers that tell the failure's story. The
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
TRACEBACK = "rabbitform-traceback"
HOST = "rabbitform-host"
PID = "rabbitform-pid"

REASON_RETRIES_EXHAUSTED = "retries_exhausted"
REASON_POISON = "poison_message"
REASON_NON_RETRYABLE = "non_retryable"  # `dead_letter_on`, or `NonRetryableError`
REASON_DELIVERY_LIMIT = "delivery_limit"  # the broker's own reason, from a quorum queue's x-delivery-limit

MAX_ERROR_MESSAGE = 1000  # keep headers small: a stack of reasons must not bloat every retry
MAX_TRACEBACK = 4096  # bytes: the end of a traceback (where it raised) on the dead letter only

Action = Literal["ack", "retry", "dead_letter", "release"]  # release: back to its queue unhandled


@dataclass(frozen=True)
class Failure:
    """Why a delivery failed: an error type name and a message."""

    error_type: str
    message: str
    poison: bool = False  # no retry can fix it (unparsable body, unexpected type)
    non_retryable: bool = False  # the handler said so (`NonRetryableError`)
    classes: tuple[str, ...] = ()  # `module:qualname` of the error's class and its bases
    traceback: str = ""


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
    attempt_tiers: tuple[int, ...] = (1,)  # the ladder tier of retry 1..n; past n the last repeats
    dead_letter_on: tuple[str, ...] = ()  # error classes that skip retries (name or module:name)
    host: str = ""
    pid: int = 0


@dataclass(frozen=True)
class Decision:
    """What to do with a delivery. For `retry` and `dead_letter`, republish the same body to
    `exchange` with `routing_key` and `headers` (confirmed), then ack the original."""

    action: Action
    exchange: str = ""
    routing_key: str = ""
    headers: Mapping[str, Any] = field(default_factory=dict)


ACK = Decision("ack")
RELEASE = Decision("release")  # a circuit breaker is open: requeue, not an attempt


def retry_count(headers: Mapping[str, Any] | None) -> int:
    """How many times this message was retried already (a malformed header counts as 0)."""
    value = (headers or {}).get(RETRY_COUNT, 0)
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


def decide(delivery: Delivery, failure: Failure | None, max_retries: int, now: datetime) -> Decision:
    """Ack on success; retry while fewer than `max_retries` retries were made; else dead-letter.

    `max_retries=N` means at most N+1 handler calls. Retry k goes to the tier its ladder gives.
    Poison messages and non-retryable failures go to the dead-letter queue at once.
    """
    if failure is None:
        return ACK
    count = retry_count(delivery.headers)
    headers = _failure_headers(delivery, failure, now)
    skip = failure.non_retryable or is_non_retryable(failure.classes, delivery.dead_letter_on)
    if not failure.poison and not skip and count < max_retries:
        headers[RETRY_COUNT] = count + 1
        return Decision(
            "retry",
            exchange=naming.store_retry_exchange(delivery.organization, delivery.service, delivery.layout)
            if delivery.store
            else naming.retry_exchange(delivery.organization, delivery.service),
            routing_key=naming.retry_tier_queue(delivery.queue, tier_of(delivery.attempt_tiers, count + 1)),
            headers=headers,
        )
    headers[RETRY_COUNT] = count
    reason = REASON_POISON if failure.poison else REASON_NON_RETRYABLE if skip else REASON_RETRIES_EXHAUSTED
    headers[DEAD_LETTER_REASON] = reason
    if failure.traceback:
        headers[TRACEBACK] = bounded_traceback(failure.traceback)
    return Decision(
        "dead_letter",
        exchange=naming.dead_letter_exchange(delivery.organization, delivery.service),
        routing_key=naming.dead_letter_queue(delivery.queue),
        headers=headers,
    )


def tier_of(attempt_tiers: tuple[int, ...], attempt: int) -> int:
    """The tier retry `attempt` (1-based) waits in; past the list the last tier repeats."""
    if not attempt_tiers:
        return 1
    return attempt_tiers[min(attempt, len(attempt_tiers)) - 1]


def is_non_retryable(classes: tuple[str, ...], rules: tuple[str, ...]) -> bool:
    """Whether an error of these classes (`module:qualname`, the class first, then its bases)
    matches a rule: a bare class name matches any class of that name, `module:Name` that one
    class; a base matching means a subclass matches."""
    if not rules or not classes:
        return False
    names = {path.rpartition(":")[2] for path in classes}
    return any((rule in classes) if ":" in rule else (rule in names) for rule in rules)


def class_paths(error: object) -> tuple[str, ...]:
    """`module:qualname` of the error's class and of every base (what `dead_letter_on` matches)."""
    return tuple(f"{cls.__module__}:{cls.__qualname__}" for cls in type(error).__mro__ if cls is not object)


def bounded_traceback(text: str, limit: int = MAX_TRACEBACK) -> str:
    """The last `limit` bytes of a traceback (where it raised), whole characters only."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return "...\n" + data[-(limit - 4) :].decode("utf-8", errors="ignore")


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
    if delivery.host:
        headers[HOST] = delivery.host
    if delivery.pid:
        headers[PID] = delivery.pid
    headers.pop(TRACEBACK, None)  # a replayed dead letter's old story is not this failure's
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
