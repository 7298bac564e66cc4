"""`Outbox`: store events in the service's own transaction; the relay publishes them after commit.

Each event is encoded at `add` time exactly as `RabbitMqEventBus` publishes it (`wire.encode`:
routing key, body, headers, message id), so the relay sends stored bytes and never re-encodes:
a relay restarted after a crash publishes the same message id again.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, insert
from sqlalchemy.orm import Session

from bus_runtime.message import Message
from bus_runtime.outbox.database import UrlOrEngine, engine_of
from bus_runtime.outbox.tables import inbox_table, metadata, outbox_table
from bus_runtime.wire import WireMessage, encode
from topology import naming


@dataclass(frozen=True)
class StoredMessage:
    """One outbox row: a message of the stream (organization, service), ready to publish."""

    id: int
    organization: str
    service: str
    wire: WireMessage
    created_at: float

    @property
    def stream(self) -> tuple[str, str]:
        return (self.organization, self.service)


def row_of(wire: WireMessage, organization: str, service: str, now: float) -> dict[str, Any]:
    return {
        "organization": organization,
        "service": service,
        "message_id": wire.message_id,
        "message_type": wire.type,
        "routing_key": wire.routing_key,
        "body": wire.body,
        "headers": dict(wire.headers) or None,
        "timestamp": wire.timestamp,
        "content_type": wire.content_type,
        "delivery_mode": wire.delivery_mode,
        "created_at": now,
    }


def stored_of(row: Any) -> StoredMessage:
    """A selected outbox row as the relay publishes it."""
    wire = WireMessage(
        body=bytes(row.body),
        message_id=row.message_id,
        type=row.message_type,
        timestamp=row.timestamp,
        routing_key=row.routing_key,
        headers=dict(row.headers or {}),
        content_type=row.content_type,
        delivery_mode=row.delivery_mode,
    )
    return StoredMessage(row.id, row.organization, row.service, wire, row.created_at)


class Outbox:
    """The outbox of one database (a URL, `postgresql://` or `sqlite:///file.db`, or an engine).

    `layout` gives whose routing keys the stored messages use, as `RabbitMqEventBus(layout=...)`.
    """

    def __init__(self, url_or_engine: UrlOrEngine, layout: naming.Layout = naming.DEFAULT_LAYOUT) -> None:
        self.engine: Engine = engine_of(url_or_engine)
        self.layout = layout

    def create_tables(self) -> None:
        """Create the outbox's and the inbox's tables where missing (`rabbitform outbox init`)."""
        metadata.create_all(self.engine, tables=[outbox_table, inbox_table])

    def add(
        self,
        session: Session,
        events: Message | Sequence[Message],
        *,
        organization: str,
        service: str,
        headers: Mapping[str, Any] | None = None,
    ) -> list[str]:
        """Store `events` in `session`'s transaction (nothing is published now); returns their
        message ids. A rollback leaves nothing; a commit makes them due for the relay."""
        if not naming.ORGANIZATION_PATTERN.match(organization) or not naming.SERVICE_PATTERN.match(service):
            raise ValueError(
                f"invalid organization/service {organization!r}/{service!r}: lower case, digits, '_' or '-'"
            )
        batch = [events] if isinstance(events, Message) else list(events)
        if not batch:
            return []
        now = time.time()
        wires = [encode(message, organization, service, headers, self.layout) for message in batch]
        session.execute(insert(outbox_table), [row_of(wire, organization, service, now) for wire in wires])
        return [wire.message_id for wire in wires]

    def __repr__(self) -> str:
        from bus_runtime.outbox.database import shown

        return f"Outbox({shown(self.engine)})"
