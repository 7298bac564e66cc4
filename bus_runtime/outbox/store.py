"""The relay's side of the outbox tables: claim due messages, mark them sent, count, purge.

PostgreSQL: a claim is one transaction that holds, for each stream (organization, service) it
takes, a transaction-level advisory lock and row locks (`FOR UPDATE SKIP LOCKED`) on that
stream's oldest due rows. Another relay skips a stream that is held, so several relays share
the work and each stream is published by one relay at a time, in insertion order. The locks go
with the transaction: a relay killed mid-batch releases them, and its rows are due again.

SQLite: one relay at a time (`SqliteRelayLock`, an OS file lock that a killed process loses);
a claim is a short read, so the services' writes are not held up while the relay publishes.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from sqlalchemy import BigInteger, Connection, Engine, cast, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY

from bus_runtime.errors import BusError
from bus_runtime.outbox.database import is_postgresql, sqlite_file
from bus_runtime.outbox.outbox import StoredMessage, stored_of
from bus_runtime.outbox.tables import outbox_table

MAX_STREAMS_PER_CLAIM = 64
STREAM_SCAN_FACTOR = 4  # due rows looked at per claimed row when choosing streams
_t = outbox_table


def stream_lock_key(organization: str, service: str) -> int:
    """A stable signed 64-bit advisory-lock key for a stream (the same in every relay)."""
    digest = hashlib.blake2b(f"rabbitform-outbox:{organization}.{service}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class Claim:
    """Due messages taken by one relay; `done(ids)` marks those sent, `release()` gives all back."""

    def __init__(self, store: OutboxStore, rows: list[StoredMessage], connection: Connection | None) -> None:
        self.store = store
        self.rows = rows
        self._connection = connection  # PostgreSQL: the open transaction holding the locks

    def done(self, ids: Sequence[int], now: float) -> None:
        if self._connection is not None:
            try:
                if ids:  # one array parameter, however many ids
                    self._connection.execute(
                        update(_t).where(_t.c.id == func.any(cast(list(ids), ARRAY(BigInteger)))).values(sent_at=now)
                    )
                self._connection.commit()
            finally:
                self._close()
            return
        if ids:
            with self.store.engine.begin() as connection:
                connection.execute(update(_t).where(_t.c.id.in_(list(ids))).values(sent_at=now))

    def release(self) -> None:
        if self._connection is not None:
            try:
                self._connection.rollback()
            finally:
                self._close()

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


class OutboxStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgresql = is_postgresql(engine)

    def claim(self, limit: int) -> Claim:
        if not self.postgresql:
            with self.engine.connect() as connection:
                rows = connection.execute(select(_t).where(_t.c.sent_at.is_(None)).order_by(_t.c.id).limit(limit)).all()
                return Claim(self, [stored_of(row) for row in rows], None)
        connection = self.engine.connect()
        try:
            return Claim(self, self._claim_streams(connection, limit), connection)
        except BaseException:
            connection.rollback()
            connection.close()
            raise

    def _claim_streams(self, connection: Connection, limit: int) -> list[StoredMessage]:
        # the streams among the oldest due rows (a bounded scan of the due index, however long
        # the backlog), oldest first
        head = (
            select(_t.c.id, _t.c.organization, _t.c.service)
            .where(_t.c.sent_at.is_(None))
            .order_by(_t.c.id)
            .limit(max(limit, 1) * STREAM_SCAN_FACTOR)
            .subquery()
        )
        streams = connection.execute(
            select(head.c.organization, head.c.service)
            .group_by(head.c.organization, head.c.service)
            .order_by(func.min(head.c.id))
            .limit(MAX_STREAMS_PER_CLAIM)
        ).all()
        taken: list[StoredMessage] = []
        for organization, service in streams:
            if len(taken) >= limit:
                break
            key = stream_lock_key(organization, service)
            if not connection.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key}).scalar():
                continue  # another relay publishes this stream now
            rows = connection.execute(
                select(_t)
                .where(_t.c.sent_at.is_(None), _t.c.organization == organization, _t.c.service == service)
                .order_by(_t.c.id)
                .limit(limit - len(taken))
                .with_for_update(skip_locked=True)
            ).all()  # one fetch, not a round of driver calls per row
            taken.extend(stored_of(row) for row in rows)
        return taken

    def due(self) -> tuple[int, float | None]:
        """How many messages are due, and when the oldest was stored (None: none due)."""
        with self.engine.connect() as connection:
            count, oldest = connection.execute(
                select(func.count(), func.min(_t.c.created_at)).where(_t.c.sent_at.is_(None))
            ).one()
        return int(count), oldest

    def purge_sent(self, before: float) -> int:
        """Remove messages sent before `before` (seconds since the epoch); returns how many."""
        with self.engine.begin() as connection:
            result = connection.execute(delete(_t).where(_t.c.sent_at.is_not(None), _t.c.sent_at < before))
        return int(result.rowcount or 0)


class SqliteRelayLock:
    """One relay per SQLite database: an exclusive lock on `<database>.relay.lock`.

    The operating system drops it when the process ends, however it ends (kill -9 included),
    so a restarted relay never waits for a stale lease.
    """

    def __init__(self, engine: Engine) -> None:
        database = sqlite_file(engine)
        self.database = database
        self.path: Path | None = None if database is None else database.with_name(database.name + ".relay.lock")
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        if self.path is None:
            return  # in memory: only this process can see the database
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise BusError(
                f"another relay ({holder}) is running on {self.database}: "
                "on SQLite one relay runs at a time (use PostgreSQL for several)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        handle, self._file = self._file, None
        if handle is not None:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
