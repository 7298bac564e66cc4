"""What the in-memory broker and its clients share: the messages a queue holds, their
properties, and the `Listener` a consumer attaches to a queue. The broker builds its clients
(`event_bus()`, `consumer()`), so the clients depend only on this module and on the `BrokerApi`
protocol they declare, never on the broker's module."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bus_runtime import retry
from bus_runtime.message import Message
from bus_runtime.wire import WireMessage, decode


@dataclass(frozen=True)
class Properties:
    """The AMQP basic properties our wire format sets."""

    message_id: str = ""
    type: str = ""
    timestamp: int | None = None
    content_type: str | None = None
    delivery_mode: int | None = None
    app_id: str | None = None

    @classmethod
    def of(cls, wire: WireMessage) -> Properties:
        return cls(wire.message_id, wire.type, wire.timestamp, wire.content_type, wire.delivery_mode)


@dataclass(frozen=True)
class QueuedMessage:
    """A message as a queue holds it (and as a consumer receives it)."""

    body: bytes
    exchange: str
    routing_key: str
    headers: Mapping[str, Any] = field(default_factory=dict)
    properties: Properties = Properties()
    enqueued_at_ms: int = 0
    redelivered: bool = False

    @property
    def message_id(self) -> str:
        return self.properties.message_id

    @property
    def retry_count(self) -> int:
        return retry.retry_count(self.headers)

    def decode(self, expected: type[Message] | None = None) -> Message:
        """The message in the body (raises `wire.PoisonMessage` like a consumer would see it)."""
        return decode(self.body, expected)


class Listener(Protocol):
    """A consumer of one queue: gets deliveries and must ack or reject each one."""

    @property
    def active(self) -> bool: ...

    @property
    def wakes_at_ms(self) -> int | None:
        """When an inactive listener becomes active by itself (a circuit breaker's pause ends)."""
        ...

    def on_delivery(self, tag: int, queue: str, message: QueuedMessage) -> None: ...
