"""The confirmed transfer both sides run over AMQP: take messages from a source queue, publish
a copy of each with publisher confirms, ack each source message only once its copy is
confirmed (`TransferLedger`). A refusal or a lost connection leaves every source message whose
copy is not confirmed in the source. Used by the planner's queue mover (`topology.apply.move`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.exceptions
from pika.channel import Channel
from pika.spec import Basic, BasicProperties

from topology.amqp.ledgers import TransferLedger
from topology.errors import RabbitformError

__all__ = ["TransferError", "TransferResult", "transfer"]

PREFETCH = 2000  # messages in flight per move: enough to keep the broker busy, bounded memory
IDLE_CHECK_SECONDS = 0.5


class TransferError(RabbitformError):
    """A transfer could not go on: what was acked was copied, the rest stays in the source."""


@dataclass
class TransferResult:
    moved: int = 0
    skipped: int = 0
    seen: set[str] = field(default_factory=set)


class _Transfer:
    """Move up to `limit` messages from `source` to `destination` on one asynchronous connection:
    publish with confirms, ack the originals once confirmed (in delivery order, `multiple`)."""

    def __init__(
        self,
        params: pika.ConnectionParameters,
        source: str,
        destination: str,
        limit: int,
        seen: set[str],
        progress: Callable[[int], None] | None,
    ) -> None:
        self.params = params
        self.source = source
        self.destination = destination
        self.limit = limit
        self.seen = seen
        self.progress = progress
        self.received = 0
        self.error: str | None = None
        self._ledger = TransferLedger()  # which originals may be acked: their copies are confirmed
        self._channel: Channel | None = None
        self._consumer_tag: str | None = None
        self._cancelled = False
        self._last_activity = time.monotonic()
        self._connection: pika.SelectConnection | None = None

    def run(self) -> None:
        if self.limit <= 0:
            return
        self._connection = pika.SelectConnection(
            self.params,
            on_open_callback=self._on_open,
            on_open_error_callback=lambda _c, exc: self._fail(f"cannot connect over AMQP: {exc!r}"),
            on_close_callback=lambda _c, _reason: self._connection.ioloop.stop() if self._connection else None,
        )
        self._connection.ioloop.start()
        if self.error:
            raise TransferError(self.error)

    # -- callbacks ------------------------------------------------------------------------

    def _on_open(self, connection: pika.SelectConnection) -> None:
        connection.channel(on_open_callback=self._on_channel)

    def _on_channel(self, channel: Channel) -> None:
        self._channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(self._on_confirm, callback=lambda _frame: self._on_confirm_mode())

    def _on_confirm_mode(self) -> None:
        assert self._channel is not None
        self._channel.basic_qos(prefetch_count=min(PREFETCH, max(self.limit, 1)), callback=lambda _f: self._consume())

    def _consume(self) -> None:
        assert self._channel is not None and self._connection is not None
        self._consumer_tag = self._channel.basic_consume(self.source, self._on_message)
        self._connection.ioloop.call_later(IDLE_CHECK_SECONDS, self._check_idle)

    def _on_message(self, channel: Channel, method: Basic.Deliver, properties: BasicProperties, body: bytes) -> None:
        self._last_activity = time.monotonic()
        tag = method.delivery_tag
        if self.received >= self.limit:  # past what we came for (e.g. our own republished copies)
            channel.basic_nack(tag, requeue=True)
            return
        self.received += 1
        message_id = properties.message_id
        if message_id and message_id in self.seen:
            self._ledger.skip(tag)
        else:
            if message_id:
                self.seen.add(message_id)
            channel.basic_publish("", self.destination, body, properties, mandatory=True)
            self._ledger.copy(tag)
        self._release()
        if self.received >= self.limit:
            self._cancel()

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        if isinstance(method, Basic.Nack):
            self._ledger.refuse(method.delivery_tag, method.multiple)  # its original stays in the source
            self._fail(f"the broker refused a message moved into {self.destination} (basic.nack)")
            return
        self._ledger.confirm(method.delivery_tag, method.multiple)
        self._release()

    @property
    def moved(self) -> int:
        return self._ledger.moved

    @property
    def skipped(self) -> int:
        return self._ledger.skipped

    def _release(self) -> None:
        """Ack, in delivery order, every original whose copy is confirmed (or that was skipped)."""
        last = self._ledger.ackable()
        if last is not None and self._channel is not None and self._channel.is_open:
            self._channel.basic_ack(last, multiple=True)
            if self.progress is not None:
                self.progress(self.moved + self.skipped)
        self._maybe_finish()

    def _on_return(self, _channel: Channel, _method: Any, _properties: Any, _body: bytes) -> None:
        self._fail(f"queue {self.destination} no longer exists: a message could not be moved into it")

    def _check_idle(self) -> None:
        """The source may hold fewer messages than counted (a consumer took some): stop when it is empty."""
        if self._channel is None or not self._channel.is_open or self._connection is None:
            return
        if not self._ledger.pending and time.monotonic() - self._last_activity >= IDLE_CHECK_SECONDS:
            self._channel.queue_declare(self.source, passive=True, callback=self._on_count)
        else:
            self._connection.ioloop.call_later(IDLE_CHECK_SECONDS, self._check_idle)

    def _on_count(self, frame: Any) -> None:
        if frame.method.message_count == 0 and not self._ledger.pending:
            self.limit = self.received
            self._cancel()
        elif self._connection is not None:
            self._last_activity = time.monotonic()
            self._connection.ioloop.call_later(IDLE_CHECK_SECONDS, self._check_idle)

    def _cancel(self) -> None:
        if self._cancelled or self._channel is None or self._consumer_tag is None:
            return
        self._cancelled = True
        self._channel.basic_cancel(self._consumer_tag, callback=lambda _f: self._maybe_finish())

    def _maybe_finish(self) -> None:
        done = self._cancelled and self.received >= self.limit and not self._ledger.pending
        if done and self._connection is not None and self._connection.is_open:
            self._connection.close()

    def _on_channel_closed(self, _channel: Channel, reason: Exception) -> None:
        if self.error is None and not (self._cancelled and not self._ledger.pending):
            self.error = f"the AMQP channel closed while moving {self.source} -> {self.destination}: {reason}"
        if self._connection is not None and self._connection.is_open:
            self._connection.close()

    def _fail(self, error: str) -> None:
        if self.error is None:
            self.error = error
        if self._connection is not None and self._connection.is_open:
            self._connection.close()
        elif self._connection is not None:
            self._connection.ioloop.stop()


def transfer(
    params: pika.ConnectionParameters,
    source: str,
    destination: str,
    limit: int,
    seen: set[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> TransferResult:
    """Move up to `limit` messages from `source` to `destination`, skipping ids in `seen` (and
    adding the ids it moves). With `source == destination` it reads a queue and puts it back."""
    ids = seen if seen is not None else set()
    pump = _Transfer(params, source, destination, limit, ids, progress)
    pump.run()
    return TransferResult(pump.moved, pump.skipped, ids)
