"""The dead-letter transport on the in-memory broker, so a service's tests can list, show,
replay and purge dead letters exactly as operators do on RabbitMQ."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

from bus_runtime.deadletters.ops import Raw
from bus_runtime.errors import BusError
from bus_runtime.memory.messages import QueuedMessage
from bus_runtime.memory.routing import DEFAULT_EXCHANGE
from topology.spec.model import Spec


class MemoryBroker(Protocol):
    """What dead-letter handling uses of `InMemoryBroker` (which offers it as `dead_letters()`,
    so this module depends on the protocol, not on the broker's module)."""

    spec: Spec | None

    def now(self) -> datetime: ...

    def has_queue(self, name: str) -> bool: ...

    def depth(self, queue: str) -> int: ...

    def get(self, queue: str) -> tuple[int, QueuedMessage] | None: ...

    def enqueue(self, message: QueuedMessage) -> list[str]: ...

    def ack(self, tag: int) -> None: ...

    def reject(self, tag: int, requeue: bool = False) -> None: ...


class MemoryTransport:
    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker
        self._held: list[int] = []

    def depth(self, queue: str) -> int:
        if not self.broker.has_queue(queue):
            raise BusError(f"queue {queue} does not exist on the in-memory broker")
        return self.broker.depth(queue)

    def hold(self, queue: str, count: int) -> Iterator[Raw]:
        for _ in range(count):
            got = self.broker.get(queue)
            if got is None:
                return
            tag, message = got
            self._held.append(tag)
            yield Raw(
                tag,
                message.body,
                dict(message.headers),
                message.message_id,
                message.properties.type,
                message.routing_key,
                message,
            )

    def republish(self, queue: str, items: list[tuple[Raw, dict[str, Any]]]) -> None:
        for raw, headers in items:
            original: QueuedMessage = raw.handle
            copy = replace(original, exchange=DEFAULT_EXCHANGE, routing_key=queue, headers=headers, redelivered=False)
            if not self.broker.enqueue(copy):
                raise BusError(f"queue {queue} does not exist on the in-memory broker: the copy was not delivered")

    def ack(self, items: list[Raw]) -> None:
        for raw in items:
            self.broker.ack(raw.tag)
            self._held.remove(raw.tag)

    def release(self) -> None:
        """Requeue newest first: each goes back to the head, so the oldest ends first again."""
        for tag in reversed(self._held):
            self.broker.reject(tag, requeue=True)
        self._held.clear()

    def pause(self, seconds: float) -> None:
        """Virtual time: nothing waits in memory."""
