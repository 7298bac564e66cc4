"""The confirmed transfer both sides run over AMQP: take messages from a source queue, publish
a copy of each with publisher confirms, ack each source message only once its copy is
confirmed (`TransferLedger`). A refusal (`basic.nack`, or a copy the broker could not route)
or a lost connection leaves every source message whose copy is not confirmed in the source.

One asynchronous connection, one channel: it consumes the source and publishes the copies
through the default exchange (routing key = the destination queue, `mandatory`), so a copy
reaches that queue alone. A `decide` callback says, per message in delivery order, what to do:
`Copy` it (with new properties), `SKIP` it (ack it, nothing published: a duplicate, a purged
message), `LEAVE` it in place (held unacked, given back where it was when the transfer ends)
or `STOP` (leave it and take nothing more). Used by the planner's queue mover
(`topology.apply.move`) and the runtime's dead-letter replay and purge
(`bus_runtime.deadletters.amqp`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import pika
import pika.exceptions
from pika.channel import Channel
from pika.spec import Basic, BasicProperties

from topology.amqp.ledgers import TransferLedger
from topology.errors import RabbitformError

__all__ = [
    "LEAVE",
    "SKIP",
    "STOP",
    "Copy",
    "Decide",
    "Decision",
    "Transfer",
    "TransferError",
    "TransferResult",
    "deduplicate",
    "transfer",
]

PREFETCH = 2000  # messages in flight per move: enough to keep the broker busy, bounded memory
IDLE_CHECK_SECONDS = 0.5


class TransferError(RabbitformError):
    """A transfer could not go on: what was acked was copied, the rest stays in the source.
    `refused`: the broker refused or could not route a copy (else the connection failed)."""

    def __init__(self, message: str, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


@dataclass(frozen=True)
class Copy:
    """Publish a copy to the destination with these properties (None: the original's)."""

    properties: BasicProperties | None = None


SKIP: Literal["skip"] = "skip"
LEAVE: Literal["leave"] = "leave"
STOP: Literal["stop"] = "stop"
Decision = Copy | Literal["skip", "leave", "stop"]
Decide = Callable[[Basic.Deliver, BasicProperties, bytes], Decision]
"""What to do with one message of the source, called in delivery order."""

_COPY = Copy()


@dataclass
class TransferResult:
    moved: int = 0
    skipped: int = 0
    seen: set[str] = field(default_factory=set)
    left: int = 0  # messages held and given back in place (LEAVE, STOP and what came after)


def deduplicate(seen: set[str]) -> Decide:
    """The mover's decision: copy each message once by `message_id` (ids in `seen` are skipped,
    the ids copied added); a message without an id is always copied (never dropped)."""

    def decide(_method: Basic.Deliver, properties: BasicProperties, _body: bytes) -> Decision:
        message_id = properties.message_id
        if message_id and message_id in seen:
            return SKIP
        if message_id:
            seen.add(message_id)
        return _COPY

    return decide


class Transfer:
    """Take up to `limit` messages from `source` on one asynchronous connection, as `decide`
    says: publish copies to `destination` with confirms, ack the originals once confirmed (in
    delivery order: `multiple` while nothing was left behind, one by one after).

    `prefetch` bounds the messages held (0: unlimited, needed when many are left in place);
    `window` bounds the copies not confirmed yet (None: the prefetch does); `rate` (messages a
    second, on average since the start, bursts of a tenth of a second) paces what is taken.
    Messages past `limit` (e.g. our own copies when `source == destination`) are requeued at
    once, or with `hold_rest` held and given back at the end with the left ones."""

    def __init__(
        self,
        params: pika.ConnectionParameters,
        source: str,
        destination: str,
        limit: int,
        decide: Decide,
        progress: Callable[[int], None] | None = None,
        *,
        prefetch: int = PREFETCH,
        window: int | None = None,
        rate: float | None = None,
        hold_rest: bool = False,
    ) -> None:
        self.params = params
        self.source = source
        self.destination = destination
        self.limit = limit
        self.decide = decide
        self.progress = progress
        self.prefetch = prefetch
        self.window = window
        self.rate = rate
        self.hold_rest = hold_rest
        self.received = 0
        self.error: str | None = None
        self.refused = False
        self.raised: BaseException | None = None  # from `decide` or `progress`: re-raised by `run`
        self._ledger = TransferLedger()  # which originals may be acked: their copies are confirmed
        self._waiting: deque[tuple[int, BasicProperties, bytes, Decision | None]] = deque()
        self._taken = 0  # copied or skipped, for the rate
        self._started = time.monotonic()
        self._timer = False
        self._held_rest = 0
        self._channel: Channel | None = None
        self._consumer_tag: str | None = None
        self._cancelled = False
        self._last_activity = time.monotonic()
        self._connection: Any = None  # pika.SelectConnection (a fake one in unit tests)

    def run(self) -> TransferResult:
        if self.limit > 0:
            self._connection = pika.SelectConnection(
                self.params,
                on_open_callback=self._on_open,
                on_open_error_callback=lambda _c, exc: self._fail(f"cannot connect over AMQP: {exc!r}"),
                on_close_callback=lambda _c, _reason: self._connection.ioloop.stop() if self._connection else None,
            )
            self._connection.ioloop.start()
        if self.raised is not None:
            raise self.raised
        if self.error:
            raise TransferError(self.error, self.refused)
        return self.result()

    def result(self, seen: set[str] | None = None) -> TransferResult:
        left = self._ledger.left + self._held_rest + len(self._waiting)
        return TransferResult(self.moved, self.skipped, seen if seen is not None else set(), left)

    @property
    def moved(self) -> int:
        return self._ledger.moved

    @property
    def skipped(self) -> int:
        return self._ledger.skipped

    # -- callbacks ------------------------------------------------------------------------

    def _on_open(self, connection: Any) -> None:
        connection.channel(on_open_callback=self._on_channel)

    def _on_channel(self, channel: Channel) -> None:
        self._channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(self._on_confirm, callback=lambda _frame: self._on_confirm_mode())

    def _on_confirm_mode(self) -> None:
        assert self._channel is not None
        prefetch = min(self.prefetch, max(self.limit, 1)) if self.prefetch else 0
        self._channel.basic_qos(prefetch_count=prefetch, global_qos=False, callback=lambda _f: self._consume())

    def _consume(self) -> None:
        assert self._channel is not None and self._connection is not None
        self._consumer_tag = self._channel.basic_consume(self.source, self._on_message, auto_ack=False)
        self._connection.ioloop.call_later(IDLE_CHECK_SECONDS, self._check_idle)

    def _on_message(self, channel: Channel, method: Basic.Deliver, properties: BasicProperties, body: bytes) -> None:
        self._last_activity = time.monotonic()
        tag = method.delivery_tag
        if self.received >= self.limit:  # past what we came for (e.g. our own republished copies)
            if self.hold_rest:
                self._held_rest += 1  # unacked: given back in place when the channel closes
            else:
                channel.basic_nack(tag, requeue=True)
            return
        self.received += 1
        try:
            decision = self.decide(method, properties, body)
        except BaseException as exc:  # e.g. a bug in a caller's filter: stop, leave everything
            self.raised = exc
            self._fail(f"the transfer from {self.source} stopped: {exc!r}")
            return
        self._waiting.append((tag, properties, body, decision))
        if decision == STOP:
            self.limit = self.received
        self._process()
        if self.received >= self.limit:
            self._cancel()

    def _process(self) -> None:
        """Carry out the waiting decisions in delivery order, as far as the window and the rate let."""
        channel = self._channel
        waiting = self._waiting
        while waiting and channel is not None and channel.is_open and self.error is None:
            tag, properties, body, decision = waiting[0]
            if isinstance(decision, Copy) or decision == SKIP:
                if isinstance(decision, Copy) and self.window is not None and len(self._ledger.copies) >= self.window:
                    return  # resumed by the next confirm
                wait = self._rate_wait()
                if wait > 0:
                    self._later(wait)
                    return
                self._taken += 1
                if isinstance(decision, Copy):
                    copy = decision.properties if decision.properties is not None else properties
                    channel.basic_publish("", self.destination, body, copy, mandatory=True)
                    self._ledger.copy(tag)
                else:
                    self._ledger.skip(tag)
            else:  # LEAVE, STOP: held unacked, given back in place at the end
                self._ledger.leave(tag)
            waiting.popleft()
        self._release()

    def _rate_wait(self) -> float:
        """Seconds to wait before taking one more (0: now)."""
        if not self.rate:
            return 0.0
        burst = max(1.0, self.rate / 10)
        allowed = (time.monotonic() - self._started) * self.rate + burst
        return 0.0 if self._taken < allowed else (self._taken - allowed + 1) / self.rate

    def _later(self, seconds: float) -> None:
        if self._timer or self._connection is None:
            return
        self._timer = True

        def resume() -> None:
            self._timer = False
            self._process()

        self._connection.ioloop.call_later(seconds, resume)

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        if isinstance(method, Basic.Nack):
            self._ledger.refuse(method.delivery_tag, method.multiple)  # its original stays in the source
            self.refused = True
            self._fail(f"the broker refused a message copied into {self.destination} (basic.nack)")
            return
        self._ledger.confirm(method.delivery_tag, method.multiple)
        self._process()

    def _release(self) -> None:
        """Ack, in delivery order, every original whose copy is confirmed (or that was skipped)."""
        channel = self._channel
        acks = self._ledger.acks()
        if acks and channel is not None and channel.is_open:
            for tag, multiple in acks:
                channel.basic_ack(tag, multiple=multiple)
            if self.progress is not None:
                try:
                    self.progress(self.moved + self.skipped)
                except BaseException as exc:
                    self.raised = exc
                    self._fail(f"the transfer from {self.source} stopped: {exc!r}")
                    return
        self._maybe_finish()

    def _on_return(self, _channel: Channel, _method: Any, _properties: Any, _body: bytes) -> None:
        self.refused = True
        self._fail(f"a message could not be routed to queue {self.destination} (does it still exist?)")

    def _check_idle(self) -> None:
        """The source may hold fewer messages than counted (a consumer took some): stop when it is empty."""
        if self._channel is None or not self._channel.is_open or self._connection is None:
            return
        if not self._busy() and time.monotonic() - self._last_activity >= IDLE_CHECK_SECONDS:
            self._channel.queue_declare(self.source, passive=True, callback=self._on_count)
        else:
            self._connection.ioloop.call_later(IDLE_CHECK_SECONDS, self._check_idle)

    def _on_count(self, frame: Any) -> None:
        if frame.method.message_count == 0 and not self._busy():
            self.limit = self.received
            self._cancel()
        elif self._connection is not None:
            self._last_activity = time.monotonic()
            self._connection.ioloop.call_later(IDLE_CHECK_SECONDS, self._check_idle)

    def _busy(self) -> bool:
        """Messages taken and not settled yet: waiting for the window or the rate, or held for a confirm."""
        return bool(self._waiting) or bool(self._ledger.pending)

    def _cancel(self) -> None:
        if self._cancelled or self._channel is None or self._consumer_tag is None:
            return
        self._cancelled = True
        self._channel.basic_cancel(self._consumer_tag, callback=lambda _f: self._maybe_finish())

    def _maybe_finish(self) -> None:
        done = self._cancelled and self.received >= self.limit and not self._busy()
        if done and self._connection is not None and self._connection.is_open:
            self._connection.close()  # gives back what is left in place

    def _on_channel_closed(self, _channel: Channel, reason: Exception) -> None:
        if self.error is None and not (self._cancelled and not self._busy()):
            self.error = f"the AMQP channel closed while copying {self.source} -> {self.destination}: {reason}"
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
    pump = Transfer(params, source, destination, limit, deduplicate(ids), progress)
    pump.run()
    return pump.result(ids)
