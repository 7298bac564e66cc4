"""What happened on the in-memory broker, as typed entries stamped with virtual time.

Tests assert on the entries; `format_trace` prints them for people (and for `make demo`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Published:
    """A client published a message (a bus, or a raw `broker.publish`)."""

    at_ms: int
    exchange: str
    routing_key: str
    message_type: str
    message_id: str

    def describe(self) -> str:
        what = self.message_type or "a raw body"
        if self.message_id:
            what += f" (id {self.message_id[:8]})"
        return f"published {what} to {_exchange(self.exchange)} [{self.routing_key}]"


@dataclass(frozen=True)
class Routed:
    """A copy of a message entered a queue."""

    at_ms: int
    exchange: str
    routing_key: str
    queue: str
    ttl_ms: int | None = None

    def describe(self) -> str:
        wait = f" (waits {self.ttl_ms} ms)" if self.ttl_ms is not None else ""
        return f"  -> queue {self.queue}{wait}"


@dataclass(frozen=True)
class Unroutable:
    """No binding matched: the message is gone (a bus counts it, or raises)."""

    at_ms: int
    exchange: str
    routing_key: str

    def describe(self) -> str:
        return f"  -> unroutable: no queue bound to {_exchange(self.exchange)} matches [{self.routing_key}]"


@dataclass(frozen=True)
class Delivered:
    """A queue handed a message to a subscriber; `attempt` is 1 plus the retries made so far."""

    at_ms: int
    queue: str
    handler: str
    message_id: str
    attempt: int

    def describe(self) -> str:
        return f"delivered from {self.queue} to {self.handler} (attempt {self.attempt})"


@dataclass(frozen=True)
class Handled:
    """The outcome of one delivery. `called` is False when the body could not be parsed."""

    at_ms: int
    queue: str
    handler: str
    called: bool
    ok: bool
    error_type: str = ""
    error_message: str = ""

    def describe(self) -> str:
        if self.ok:
            return f"  {self.handler} succeeded: ack"
        verb = "failed" if self.called else "not called"
        return f"  {self.handler} {verb}: {self.error_type}: {self.error_message}"


@dataclass(frozen=True)
class Retried:
    """The consumer republished a failed message for retry number `retry`, then acked it."""

    at_ms: int
    queue: str
    handler: str
    retry: int
    max_retries: int
    exchange: str
    routing_key: str

    def describe(self) -> str:
        return f"  retry {self.retry}/{self.max_retries}: to {_exchange(self.exchange)} [{self.routing_key}], ack"


@dataclass(frozen=True)
class DeadLettered:
    """The consumer republished a message to its dead-letter queue, then acked it."""

    at_ms: int
    queue: str
    handler: str
    reason: str
    exchange: str
    routing_key: str

    def describe(self) -> str:
        return f"  dead-lettered ({self.reason}): to {_exchange(self.exchange)} [{self.routing_key}], ack"


@dataclass(frozen=True)
class Expired:
    """A message's TTL ran out in `queue`; the broker dead-lettered it (back, for a retry queue)."""

    at_ms: int
    queue: str
    exchange: str | None
    routing_key: str

    def describe(self) -> str:
        if self.exchange is None:
            return f"expired in {self.queue}: dropped (the queue has no dead-letter exchange)"
        return f"expired in {self.queue}: back through {_exchange(self.exchange)} [{self.routing_key}]"


@dataclass(frozen=True)
class Rejected:
    """A client rejected a delivery; without requeue the queue's dead-letter exchange takes it."""

    at_ms: int
    queue: str
    requeue: bool
    exchange: str | None
    routing_key: str

    def describe(self) -> str:
        if self.requeue:
            return f"rejected in {self.queue}: requeued"
        if self.exchange is None:
            return f"rejected in {self.queue}: dropped (the queue has no dead-letter exchange)"
        return f"rejected in {self.queue}: dead-lettered through {_exchange(self.exchange)} [{self.routing_key}]"


@dataclass(frozen=True)
class BreakerChanged:
    """A subscriber's circuit breaker moved: `open` (deliveries wait), `half_open` (one goes
    through), `closed`."""

    at_ms: int
    queue: str
    handler: str
    to: str

    def describe(self) -> str:
        return f"circuit breaker of {self.handler} {self.to.replace('_', '-')}"


TraceEntry = (
    Published | Routed | Unroutable | Delivered | Handled | Retried | DeadLettered | Expired | Rejected | BreakerChanged
)


def _exchange(name: str) -> str:
    return name or '"" (default exchange)'


def format_trace(entries: Iterable[TraceEntry]) -> str:
    """One line per entry: `  5000 ms  expired in retry.x: back through ...`."""
    lines = [f"{entry.at_ms:>8} ms  {entry.describe()}" for entry in entries]
    return "\n".join(lines)
