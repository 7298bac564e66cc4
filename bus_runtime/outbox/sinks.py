"""Where the relay publishes: RabbitMQ with publisher confirms, or the in-memory broker.

A sink publishes a claim's messages and says which the broker confirmed; it never raises for
a broker that is down (the relay backs off and says so), only for a bug.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from bus_runtime.bus import outgoing_of
from bus_runtime.connector import RabbitMqConnector
from bus_runtime.errors import PublishError, UnroutableError
from bus_runtime.outbox.outbox import StoredMessage
from bus_runtime.publisher import ConfirmedPublisher
from topology import naming

if TYPE_CHECKING:
    from bus_runtime.memory.broker import InMemoryBroker

log = logging.getLogger("bus_runtime.outbox.relay")


@dataclass(frozen=True)
class Outcome:
    """Which stored messages the broker confirmed; `error` says why the others were not."""

    confirmed: frozenset[int]
    error: str | None = None


class Sink(Protocol):
    def publish(self, rows: Sequence[StoredMessage]) -> Outcome: ...

    def close(self) -> None: ...


class AmqpSink:
    """Publishes with confirms on one connection (`ConfirmedPublisher`): a message counts as
    sent only once the broker confirmed it. Unroutable messages are logged (the broker did
    take them: no queue was bound for their routing key)."""

    def __init__(self, connector: RabbitMqConnector, timeout: float = 30.0, window: int = 20_000) -> None:
        self.connector = connector
        self.timeout = timeout
        # one attempt per claim: the relay's own back-off (logged) paces the reconnects
        self._publisher = ConfirmedPublisher(
            connector, purpose="outbox-relay", window=window, timeout=timeout, reconnect_attempts=1
        )

    def publish(self, rows: Sequence[StoredMessage]) -> Outcome:
        items = [outgoing_of(row.wire, row.organization, row.service) for row in rows]
        ids = {id(item): row.id for item, row in zip(items, rows, strict=True)}
        try:
            returned = self._publisher.publish(items, self.timeout)
        except PublishError as error:
            failed = {ids[id(item)] for item in error.messages if id(item) in ids}
            reason = error.reasons[0] if error.reasons else error.reason  # e.g. cannot connect to ...
            return Outcome(frozenset(ids.values()) - failed, reason)
        except UnroutableError:  # pragma: no cover - on_unroutable is "log"
            returned = []
        for item in returned:
            log.warning("unroutable: %s (exchange %r, routing key %r)", item.label, item.exchange, item.routing_key)
        return Outcome(frozenset(ids.values()))

    def close(self) -> None:
        self._publisher.close()


class MemorySink:
    """Publishes to an `InMemoryBroker` (a service's unit tests: committed means published)."""

    def __init__(self, broker: InMemoryBroker) -> None:
        self.broker = broker

    def publish(self, rows: Sequence[StoredMessage]) -> Outcome:
        from bus_runtime.memory.messages import Properties

        for row in rows:
            wire = row.wire
            properties = replace(Properties.of(wire), app_id=row.service)
            exchange = naming.exchange(row.organization, row.service)
            self.broker.publish(exchange, wire.routing_key, wire.body, wire.headers, properties)
        return Outcome(frozenset(row.id for row in rows))

    def close(self) -> None:
        pass
