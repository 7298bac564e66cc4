"""The outbox's and the inbox's tables (SQLAlchemy Core: they live in the service's database).

Times are seconds since the epoch (a float): the same on SQLite and PostgreSQL, no time zones.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
)

metadata = MetaData()

# One row per message, in insertion order (`id`); `sent_at` is set once the broker confirmed it.
outbox_table = Table(
    "rabbitform_outbox",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("organization", String(100), nullable=False),
    Column("service", String(100), nullable=False),
    Column("message_id", String(64), nullable=False),
    Column("message_type", String(255), nullable=False),
    Column("routing_key", String(255), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("headers", JSON, nullable=True),
    Column("timestamp", BigInteger, nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("delivery_mode", SmallInteger, nullable=False),
    Column("created_at", Float(precision=53), nullable=False),
    Column("sent_at", Float(precision=53), nullable=True),
)
# the relay's scan: due rows of a stream in order (partial where the database has it)
Index(
    "ix_rabbitform_outbox_due",
    outbox_table.c.organization,
    outbox_table.c.service,
    outbox_table.c.id,
    postgresql_where=outbox_table.c.sent_at.is_(None),
    sqlite_where=outbox_table.c.sent_at.is_(None),
)
# the oldest due rows across streams, without walking the sent rows kept for retention
Index(
    "ix_rabbitform_outbox_due_order",
    outbox_table.c.id,
    postgresql_where=outbox_table.c.sent_at.is_(None),
    sqlite_where=outbox_table.c.sent_at.is_(None),
)
Index("ix_rabbitform_outbox_sent_at", outbox_table.c.sent_at)

# One row per (message, subscriber) handled: a redelivered message finds its row and is acked.
inbox_table = Table(
    "rabbitform_inbox",
    metadata,
    Column("message_id", String(64), primary_key=True),
    Column("subscriber", String(255), primary_key=True),
    Column("handled_at", Float(precision=53), nullable=False),
)
Index("ix_rabbitform_inbox_handled_at", inbox_table.c.handled_at)
