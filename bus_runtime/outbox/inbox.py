"""`Inbox`: each message's effect at most once per subscriber, in the handler's own transaction.

`RabbitMqEventConsumer(..., inbox=Inbox(url))` runs every handler through `Inbox.guard`: one
transaction holds the handler's writes (a handler declaring a second parameter `session` gets
that `Session`) and the record (message id, subscriber); it commits before the consumer acks. A
message already recorded for the subscriber is acked without calling the handler; a failure
rolls its writes and its record back and the subscriber's retry policy decides. A consumer
killed between the commit and the ack gets the message again and finds the record.

Batches: the consumer hands a subscriber's deliveries that are ready together (up to `batch`)
to one transaction (`Inbox.batch`): their records are claimed with one statement (what is
recorded already is a duplicate, acked without a handler call), each handler runs in a
SAVEPOINT of its own (its failure rolls back its writes and its record only), then one COMMIT
covers them all before their acks. A failed commit fails every delivery of the batch: each
follows the retry policy, and what it wrote was rolled back. Without a consumer's batch (the
in-memory broker), each delivery has a transaction of its own.

The subscriber is the handler's queue (one per handler and message, `topology.naming`).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from contextvars import ContextVar, Token
from dataclasses import replace
from typing import Any

from meiga import isSuccess
from sqlalchemy import Engine, delete, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bus_runtime.async_handlers import is_async_handler
from bus_runtime.dispatch import failure_of
from bus_runtime.message import Message
from bus_runtime.outbox.database import UrlOrEngine, engine_of
from bus_runtime.outbox.tables import inbox_table, metadata
from bus_runtime.subscriber import Handler, Subscription, wants_session

log = logging.getLogger("bus_runtime.outbox.inbox")

DEFAULT_RETENTION = 7 * 24 * 3600.0  # seconds a record is kept: longer than any redelivery
DEFAULT_BATCH = 50  # deliveries of one subscriber at most in one transaction (1: no batches)
PURGE_INTERVAL = 600.0
_t = inbox_table
_COLUMNS = f"INSERT INTO {_t.name} (message_id, subscriber, handled_at) "
_CLAIMS = {
    "postgresql": text(
        _COLUMNS + "SELECT unnest(CAST(:ids AS varchar[])), :subscriber, :now "
        "ON CONFLICT DO NOTHING RETURNING message_id"
    ),
    # WHERE true: SQLite's parser needs it between a SELECT and ON CONFLICT
    "sqlite": text(
        _COLUMNS + "SELECT value, :subscriber, :now FROM json_each(:ids) WHERE true "
        "ON CONFLICT DO NOTHING RETURNING message_id"
    ),
}


class Inbox:
    """Records of handled messages in a database (a URL or an engine, as `Outbox`).

    `batch` bounds how many deliveries of one subscriber a consumer commits in one transaction
    (1: a transaction per delivery); records older than `retention` seconds are removed."""

    def __init__(
        self,
        url_or_engine: UrlOrEngine,
        retention: float = DEFAULT_RETENTION,
        purge_interval: float = PURGE_INTERVAL,
        batch: int = DEFAULT_BATCH,
    ) -> None:
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be an int >= 1, not {batch!r}")
        self.engine: Engine = engine_of(url_or_engine)
        self.batch_limit = batch
        self._dialect = self.engine.dialect.name
        self.retention = retention
        self.purge_interval = purge_interval
        self.duplicates = 0  # deliveries acked without a handler call
        self._last_purge = time.time()
        self._purge_lock = threading.Lock()

    def create_tables(self) -> None:
        metadata.create_all(self.engine, tables=[inbox_table])

    def seen(self, message_id: str, subscriber: str) -> bool:
        with Session(self.engine) as session:
            return self._recorded(session, message_id, subscriber)

    def purge(self, before: float | None = None) -> int:
        """Remove records older than `before` (default: the retention); returns how many."""
        cutoff = time.time() - self.retention if before is None else before
        with self.engine.begin() as connection:
            result = connection.execute(delete(_t).where(_t.c.handled_at < cutoff))
        return int(result.rowcount or 0)

    # ------------------------------------------------------------------ the handler's transaction

    def guard(self, subscription: Subscription) -> Subscription:
        """The subscription with its handler run in the inbox's transaction (same name, queue, policy)."""
        handler, subscriber = subscription.handler, subscription.queue
        with_session = wants_session(handler)
        if is_async_handler(handler):

            async def guarded_async(message: Message) -> Any:
                return await self._handle_async(handler, with_session, subscriber, message)

            guarded: Handler = guarded_async
        else:

            def guarded_sync(message: Message) -> Any:
                return self._handle(handler, with_session, subscriber, message)

            guarded = guarded_sync
        functools.update_wrapper(guarded, handler)

        def batch(message_ids: Sequence[str | None]) -> _Batch:
            return _Batch(self, subscriber, message_ids)

        # SQLite has one writer: a second batch would wait for the first one's commit (sleeping
        # in the busy handler's steps) holding deliveries that could have joined the next batch
        parallel = self._dialect != "sqlite"
        return replace(
            subscription, handler=guarded, batch=batch, batch_limit=self.batch_limit, batch_parallel=parallel
        )

    def _handle(self, handler: Handler, with_session: bool, subscriber: str, message: Message) -> Any:
        batch = _current.get()
        if batch is not None and batch.subscriber == subscriber:
            return batch.run(handler, with_session, message)
        session = Session(self.engine)
        try:
            if self._begin(session, message, subscriber):
                return isSuccess
            result = handler(message, session) if with_session else handler(message)
            return self._finish(session, message, subscriber, result)
        finally:
            session.close()
            self._maybe_purge()

    async def _handle_async(self, handler: Handler, with_session: bool, subscriber: str, message: Message) -> Any:
        batch = _current.get()
        if batch is not None and batch.subscriber == subscriber:
            return await batch.run_async(handler, with_session, message)
        session = Session(self.engine)
        try:
            if await asyncio.to_thread(self._begin, session, message, subscriber):
                return isSuccess
            result = await (handler(message, session) if with_session else handler(message))
            return await asyncio.to_thread(self._finish, session, message, subscriber, result)
        finally:
            await asyncio.to_thread(session.close)
            self._maybe_purge()

    def _begin(self, session: Session, message: Message, subscriber: str) -> bool:
        """Record the message first, in the transaction the handler then joins; True when it was
        recorded already (nothing to do but ack). A second delivery handled at the same moment
        waits on the first one's row and finds it once that commits."""
        if not self._claim(session, message.id, subscriber):
            session.rollback()
            self.duplicates += 1
            log.info("%s: message %s handled already: acked without calling the handler", subscriber, message.id)
            return True
        return False

    def _finish(self, session: Session, message: Message, subscriber: str, result: Any) -> Any:
        """Commit the handler's writes with the record, or roll both back on a failure."""
        if failure_of(result) is not None:
            session.rollback()
            return result
        try:
            session.commit()
        except IntegrityError:  # a database without ON CONFLICT: another delivery committed first
            session.rollback()
            self.duplicates += 1
            return isSuccess
        return result

    def _claim(self, session: Session, message_id: str, subscriber: str) -> bool:
        """Insert the record unless it exists: one statement where the database has ON CONFLICT."""
        return message_id in self._claim_all(session, [message_id], subscriber)

    def _claim_all(self, session: Session, message_ids: Iterable[str], subscriber: str) -> set[str]:
        """Insert the records that do not exist yet, in one statement where the database has ON
        CONFLICT (in id order: two batches sharing ids lock them in one order); the ids inserted."""
        ids = sorted(set(message_ids))
        if not ids:
            return set()
        now = time.time()
        claim = _CLAIMS.get(self._dialect)
        if claim is not None:  # the ids as one parameter: a statement compiled once, whatever the count
            ids_parameter: Any = ids if self._dialect == "postgresql" else json.dumps(ids)
            return set(session.execute(claim, {"ids": ids_parameter, "subscriber": subscriber, "now": now}).scalars())
        query = select(_t.c.message_id).where(_t.c.subscriber == subscriber, _t.c.message_id.in_(ids))
        fresh = set(ids) - set(session.execute(query).scalars())
        if fresh:
            rows = [{"message_id": i, "subscriber": subscriber, "handled_at": now} for i in sorted(fresh)]
            session.execute(insert(_t), rows)
        return fresh

    def _unclaim(self, session: Session, message_ids: Iterable[str], subscriber: str) -> None:
        ids = sorted(set(message_ids))
        if ids:
            session.execute(delete(_t).where(_t.c.subscriber == subscriber, _t.c.message_id.in_(ids)))

    def _recorded(self, session: Session, message_id: str, subscriber: str) -> bool:
        query = select(_t.c.message_id).where(_t.c.message_id == message_id, _t.c.subscriber == subscriber)
        return session.execute(query).first() is not None

    def _maybe_purge(self) -> None:
        now = time.time()
        if now - self._last_purge < self.purge_interval or not self._purge_lock.acquire(blocking=False):
            return
        try:
            self._last_purge = now
            removed = self.purge()
            if removed:
                log.info("inbox: removed %d record(s) older than %gs", removed, self.retention)
        except Exception as exc:
            log.warning("inbox: removing old records failed: %s", exc)
        finally:
            self._purge_lock.release()


# ---------------------------------------------------------------------- several deliveries, one commit

_current: ContextVar[_Batch | None] = ContextVar("rabbitform_inbox_batch", default=None)


class _Batch:
    """One transaction for deliveries of one subscriber (`Inbox.guard(...).batch`): entered, the
    guarded handler joins it; left without an exception, it commits.

    The ids known before parsing (the AMQP message id) are claimed at entry with one statement;
    a message whose id was not known is claimed on its own when its handler is called. A claim
    that finds a record means a duplicate: acked without a handler call. A handler failure rolls
    back its SAVEPOINT (its writes), and its record is removed before the commit; a later
    delivery of the same message in the batch then runs the handler again."""

    def __init__(self, inbox: Inbox, subscriber: str, message_ids: Sequence[str | None]) -> None:
        self.inbox = inbox
        self.subscriber = subscriber
        self._ids = [i for i in message_ids if i]
        self.session = Session(inbox.engine)
        self._checked: set[str] = set()  # claimed at entry (fresh or not)
        self._fresh: set[str] = set()  # recorded by this transaction
        self._done: set[str] = set()  # handled successfully in this transaction
        self._token: Token[_Batch | None] | None = None

    # -- entering and leaving (the claim and the commit are the database's slow parts)

    def _claim(self) -> None:
        try:
            self._fresh = self.inbox._claim_all(self.session, self._ids, self.subscriber)
        except BaseException:
            self.session.close()
            raise
        self._checked = set(self._ids)

    def _commit(self) -> None:
        try:
            failed = self._fresh - self._done
            if failed:
                self.inbox._unclaim(self.session, failed, self.subscriber)
            self.session.commit()
        finally:
            self.session.close()
            self.inbox._maybe_purge()

    def _abandon(self) -> None:
        try:
            self.session.rollback()
        finally:
            self.session.close()

    def __enter__(self) -> _Batch:
        self._claim()
        self._token = _current.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _current.reset(self._token)
        self._abandon() if exc[0] is not None else self._commit()

    async def __aenter__(self) -> _Batch:
        await asyncio.to_thread(self._claim)
        self._token = _current.set(self)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._token is not None:
            _current.reset(self._token)
        await asyncio.to_thread(self._abandon if exc[0] is not None else self._commit)

    # -- one delivery

    def _is_duplicate(self, message_id: str) -> bool:
        if message_id not in self._checked:  # its id was not known before parsing
            self._checked.add(message_id)
            self._fresh |= self.inbox._claim_all(self.session, [message_id], self.subscriber)
        if message_id in self._fresh and message_id not in self._done:
            return False
        self.inbox.duplicates += 1
        log.info("%s: message %s handled already: acked without calling the handler", self.subscriber, message_id)
        return True

    def run(self, handler: Handler, with_session: bool, message: Message) -> Any:
        if self._is_duplicate(message.id):
            return isSuccess
        savepoint = self.session.begin_nested() if with_session else None
        try:
            result = handler(message, self.session) if with_session else handler(message)
            return self._settle(savepoint, message, result)
        except BaseException:
            if savepoint is not None and savepoint.is_active:
                savepoint.rollback()
            raise

    async def run_async(self, handler: Handler, with_session: bool, message: Message) -> Any:
        if self._is_duplicate(message.id):
            return isSuccess
        savepoint = self.session.begin_nested() if with_session else None
        try:
            result = await (handler(message, self.session) if with_session else handler(message))
            return self._settle(savepoint, message, result)
        except BaseException:
            if savepoint is not None and savepoint.is_active:
                savepoint.rollback()
            raise

    def _settle(self, savepoint: Any, message: Message, result: Any) -> Any:
        """Keep the handler's writes (releasing its savepoint flushes them: an error there is the
        handler's failure), or roll them back on a failure."""
        if failure_of(result) is not None:
            if savepoint is not None:
                savepoint.rollback()
            return result
        if savepoint is not None:
            savepoint.commit()
        self._done.add(message.id)
        return result
