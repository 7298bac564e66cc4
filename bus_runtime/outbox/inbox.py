"""`Inbox`: each message's effect at most once per subscriber, in the handler's own transaction.

`RabbitMqEventConsumer(..., inbox=Inbox(url))` runs every handler through `Inbox.guard`: one
transaction per delivery holds the handler's writes (a handler declaring a second parameter
`session` gets that `Session`) and the record (message id, subscriber); it commits before the
consumer acks. A message already recorded for the subscriber is acked without calling the
handler; a failure rolls everything back and the subscriber's retry policy decides. A consumer
killed between the commit and the ack gets the message again and finds the record.

The subscriber is the handler's queue (one per handler and message, `topology.naming`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from dataclasses import replace
from typing import Any

from meiga import isSuccess
from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite
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
PURGE_INTERVAL = 600.0
_t = inbox_table


class Inbox:
    """Records of handled messages in a database (a URL or an engine, as `Outbox`)."""

    def __init__(
        self, url_or_engine: UrlOrEngine, retention: float = DEFAULT_RETENTION, purge_interval: float = PURGE_INTERVAL
    ) -> None:
        self.engine: Engine = engine_of(url_or_engine)
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
        return replace(subscription, handler=guarded)

    def _handle(self, handler: Handler, with_session: bool, subscriber: str, message: Message) -> Any:
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
        values = {"message_id": message_id, "subscriber": subscriber, "handled_at": time.time()}
        if self._dialect in ("postgresql", "sqlite"):
            module = postgresql if self._dialect == "postgresql" else sqlite
            statement = module.insert(_t).values(**values).on_conflict_do_nothing().returning(_t.c.message_id)
            return session.execute(statement).first() is not None
        if self._recorded(session, message_id, subscriber):
            return False
        session.execute(insert(_t).values(**values))
        return True

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
