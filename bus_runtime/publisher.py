"""Confirmed publishing with many messages in flight.

A per-message confirm on a blocking channel costs a round trip each (about 20x slower than no
confirms). Here one I/O thread keeps a window of unconfirmed messages in flight on a
confirm-mode channel; `publish(batch)` hands the batch to that thread and blocks until the
broker confirmed every message of it. Nothing is reported published that the broker did not
confirm: every message of a batch is settled exactly once, on the I/O thread, as confirmed or
failed with its reason (nacked, timed out before or after it was sent, channel closed,
connection not re-established, publisher closed), and `PublishError` lists every failed one. After a lost connection the unconfirmed
messages are published again on the new one (at-least-once: a consumer may see a duplicate).

Through a failover (a node lost, the publisher reconnected to another one), a nack is not
final at once: RabbitMQ 3.10's channel keeps, per quorum queue, the leader the queue's record
named when the channel first published to it. A channel opened just after the leader's node
died, before the new leader is recorded, asks the dead node and nacks every publish to that
queue for as long as the channel lives (until the node returns). So, for `FAILOVER_WINDOW_S`
after a lost connection, a nacked message goes back to the head of the queue and the channel
is replaced (after a short backoff) by a fresh one, which reads the queue's current leader.
Outside that window a nack is final (e.g. a full queue with `x-overflow: reject-publish`).

When the broker closes the connection over a protocol error (5xx) or the channel over a
precondition (406, e.g. a body over its maximum size) while messages were in flight, it does
not say which message it refused. Those messages are then sent again one at a time: one that
is refused alone fails alone, with the broker's reason, and is not sent again; the others go
through. (`bus_runtime.limits` refuses the known causes before anything is sent.)

Messages are published `mandatory`: the broker returns the ones no queue is bound for
(before their ack), and they are logged, counted and, with `on_unroutable="raise"`, raised.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pika
from pika.channel import Channel
from pika.frame import Method

from bus_runtime.connector import RabbitMqConnector
from bus_runtime.errors import BrokerUnavailable, PublishError, UnroutableError, describe_error
from bus_runtime.iothread import IoThread, SelectConnection, backoff, open_connection
from bus_runtime.limits import DEFAULT_FRAME_MAX, MessageRefused, check_timeout
from bus_runtime.telemetry import hooks
from topology.amqp import ConfirmLedger

log = logging.getLogger("bus_runtime.publisher")

NACKED = "nacked by the broker"
FAILOVER_WINDOW_S = 30.0  # after a lost connection, nacks are retried on a fresh channel this long
NACK_BACKOFF_CAP_S = 1.0  # the longest pause before replacing a channel that nacked
REFUSED = "refused by the broker"
# Closes that mean "something sent was refused": connection-level protocol errors, and a channel
# precondition failure (message over the broker's maximum size).
PROTOCOL_ERRORS = frozenset({501, 502, 503, 504, 505, 506, 540})
CHANNEL_REFUSALS = frozenset({406})
CLOSED = "the publisher was closed"

OnUnroutable = Literal["log", "raise"]


@dataclass(eq=False)
class Outgoing:
    """One message to publish. `label` names it in errors and logs (e.g. `user.created <id>`)."""

    exchange: str
    routing_key: str
    body: bytes
    properties: pika.BasicProperties
    label: str


BatchDone = Callable[[dict[int, str], list[int]], None]


@dataclass(eq=False)
class _Batch:
    """Messages published together. Each is settled exactly once, on the I/O thread: confirmed,
    or failed with its reason. A failure is final: a confirm arriving later changes nothing."""

    items: Sequence[Outgoing]
    on_done: BatchDone | None = None  # called on the I/O thread with (failures, unroutable)
    outstanding: int = 0
    failures: dict[int, str] = field(default_factory=dict)
    unroutable: list[int] = field(default_factory=list)
    returned: set[int] = field(default_factory=set)
    settled: list[bool] = field(default_factory=list)
    cancelled: bool = False
    done: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.outstanding = len(self.items)
        self.settled = [False] * len(self.items)
        if not self.items:
            self.done.set()

    def settle(self, index: int, failure: str | None = None) -> None:
        if self.settled[index]:
            return
        self.settled[index] = True
        if failure is not None:
            self.failures[index] = failure
        self.outstanding -= 1
        if self.outstanding == 0:
            self.done.set()
            if hooks.active():
                hooks.published(
                    self.items[0].exchange,
                    len(self.items) - len(self.failures),
                    len(self.failures),
                    failure_kind(next(iter(self.failures.values()), None)),
                )
            if self.on_done is not None:
                self.on_done(self.failures, self.unroutable)

    def unsettled(self) -> list[int]:
        return [i for i, settled in enumerate(self.settled) if not settled]


def failure_kind(reason: str | None) -> str | None:
    """A metric label for a failure reason: a few fixed kinds, never the free text."""
    if reason is None:
        return None
    for kind, marker in (
        ("nacked", NACKED),
        ("timeout", "no broker confirm"),
        ("closed", CLOSED),
        ("refused", REFUSED),
    ):
        if reason.startswith(marker):
            return kind
    return "connection"


Entry = tuple[_Batch, int]


class State(enum.Enum):
    """Where the publisher's connection is (I/O-thread state; `ConfirmedPublisher.state`)."""

    IDLE = "idle"  # no connection and nothing to send yet
    CONNECTING = "connecting"  # a connection and its confirm-mode channel are opening
    READY = "ready"  # publishing on a confirm-mode channel
    REPLACING_CHANNEL = "replacing channel"  # the channel closed (broker, or nacks in a failover)
    RECONNECTING = "reconnecting"  # the connection is lost; the next attempt waits for its backoff
    CLOSING = "closing"  # close() was called; the broker's goodbye is awaited
    CLOSED = "closed"


_S = State
TRANSITIONS: dict[State, frozenset[State]] = {
    _S.IDLE: frozenset({_S.CONNECTING, _S.CLOSING, _S.CLOSED}),
    _S.CONNECTING: frozenset({_S.READY, _S.RECONNECTING, _S.IDLE, _S.CLOSING}),
    _S.READY: frozenset({_S.REPLACING_CHANNEL, _S.RECONNECTING, _S.IDLE, _S.CLOSING}),
    _S.REPLACING_CHANNEL: frozenset({_S.READY, _S.RECONNECTING, _S.IDLE, _S.CLOSING}),
    _S.RECONNECTING: frozenset({_S.CONNECTING, _S.IDLE, _S.CLOSING, _S.CLOSED}),
    _S.CLOSING: frozenset({_S.CLOSED}),
    _S.CLOSED: frozenset(),
}


class ConfirmedPublisher:
    """Thread-safe confirmed publisher over one connection, owned by its own I/O thread.

    `window` bounds the messages in flight (published, not yet confirmed); `timeout` bounds how
    long `publish` waits for a batch; `reconnect_attempts` how many failed connection attempts
    in a row fail the waiting batches.
    """

    def __init__(
        self,
        connector: RabbitMqConnector,
        purpose: str = "publisher",
        window: int = 20_000,
        timeout: float = 30.0,
        reconnect_attempts: int = 5,
        on_unroutable: OnUnroutable = "log",
        io: IoThread | None = None,
    ) -> None:
        self.connector = connector
        self.purpose = purpose
        self.window = max(1, window)
        self.timeout = timeout
        self.reconnect_attempts = reconnect_attempts
        self.on_unroutable = on_unroutable
        self.unroutable_count = 0
        self.connection_count = 0  # connections opened so far (more than one: it reconnected)
        # a loop of the caller's (the consumer's republisher) is shared, not owned: no thread hop
        # per batch and per confirm; `close()` leaves it running
        self._owns_io = io is None
        self._io = IoThread(f"rabbitform-{purpose}") if io is None else io
        self._lock = threading.Lock()
        self._closed = False
        # I/O-thread state
        self._queue: deque[Entry] = deque()
        self._inflight: ConfirmLedger[Entry] = ConfirmLedger()  # published on the current channel, unconfirmed
        self._connection: SelectConnection | None = None
        self._channel: Channel | None = None  # the confirm-mode channel, in state READY
        self.state = State.IDLE
        self.transitions: deque[tuple[State, State, str]] = deque(maxlen=200)  # (from, to, why)
        self.illegal_transitions: list[tuple[State, State, str]] = []  # a bug if ever non-empty
        self._failed_attempts = 0
        self._last_error = ""
        self._shut = threading.Event()
        self._retry_nacks_until = 0.0  # monotonic: nacks before it are retried (a failover)
        self._recycling: Channel | None = None  # the channel being replaced after nacks
        self._nacked: dict[int, Entry] = {}  # nacked on it by tag: sent again, in order, on the next
        self._nack_rounds = 0  # channels replaced in a row because of nacks (paces the backoff)
        self._suspects: set[Entry] = set()  # in flight when the broker refused something: sent alone
        self.frame_max = DEFAULT_FRAME_MAX  # the connection's, once negotiated (bus_runtime.limits)

    # ------------------------------------------------------------------ caller side

    def publish(self, items: Sequence[Outgoing], timeout: float | None = None) -> list[Outgoing]:
        """Publish and wait for every confirm; returns the messages the broker returned as
        unroutable (raises `UnroutableError` for them with `on_unroutable="raise"`)."""
        return self.publish_chunks([items], timeout)

    def publish_chunks(self, chunks: Iterable[Sequence[Outgoing]], timeout: float | None = None) -> list[Outgoing]:
        """Like `publish`, for a batch produced chunk by chunk: each chunk goes to the I/O
        thread as soon as it is built, so encoding the next chunk overlaps the broker's work.

        Every message ends either confirmed or in the `PublishError`, with its reason: nacked,
        timed out (sent or not), channel closed, connection not re-established, publisher closed.
        """
        check_timeout(timeout)
        with self._lock:
            if self._closed:
                items = [item for chunk in chunks for item in chunk]
                raise PublishError(
                    "the publisher is closed",
                    [item.label for item in items],
                    items=items,
                    reasons=[CLOSED] * len(items),
                )
        batches: list[_Batch] = []
        build_error: BaseException | None = None
        try:
            for chunk in chunks:
                if chunk:
                    if not batches:  # the I/O thread starts with the first chunk built, not before
                        with self._lock:
                            self._io.start()
                    batch = _Batch(chunk)
                    batches.append(batch)
                    self._io.call(self._submit, batch)
        except MessageRefused as exc:
            if not batches:  # refused before anything was sent: the caller's error, as it is
                raise
            build_error = exc
        except Exception as exc:  # building a chunk failed: settle what was handed over, then say so
            build_error = exc
        wait = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        for batch in batches:
            if not batch.done.wait(max(0.0, deadline - time.monotonic())):
                self._expire(batch, wait)
        failed = [(batch.items[i], reason) for batch in batches for i, reason in sorted(batch.failures.items())]
        if failed or build_error is not None:
            counts = Counter(reason for _, reason in failed)
            summary = "; ".join(f"{n} {reason}" for reason, n in counts.most_common())
            if build_error is not None:
                summary = f"building the batch failed ({build_error}); the messages after it were not published" + (
                    f"; {summary}" if summary else ""
                )
            raise PublishError(
                summary,
                [item.label for item, _ in failed],
                items=[item for item, _ in failed],
                reasons=[reason for _, reason in failed],
            ) from build_error
        returned = [batch.items[i] for batch in batches for i in batch.unroutable]
        if returned and self.on_unroutable == "raise":
            raise UnroutableError([item.label for item in returned])
        return returned

    def submit(self, items: Sequence[Outgoing], on_done: BatchDone) -> None:
        """Publish without waiting and without a deadline: `on_done(failures, unroutable)` runs on
        the publisher's I/O thread once every message is confirmed or failed (failures map an
        index of `items` to its reason)."""
        with self._lock:
            if self._closed:
                on_done(dict.fromkeys(range(len(items)), CLOSED), [])
                return
            self._io.start()
        batch = _Batch(items, on_done)
        if self._io.in_loop():
            self._submit(batch)
        else:
            self._io.call(self._submit, batch)

    def _expire(self, batch: _Batch, wait: float) -> None:
        """The caller's deadline passed: settle every message of `batch` still open, on the I/O
        thread, so that a confirm arriving later cannot make a message both failed and confirmed."""
        expired = threading.Event()
        self._io.call(self._expire_in_loop, batch, wait, expired)
        if not expired.wait(5.0) and not batch.done.is_set():  # the I/O thread is gone or stuck
            for index in batch.unsettled():
                batch.failures.setdefault(index, f"no broker confirm within {wait:g}s (the I/O thread did not answer)")

    def close(self, timeout: float = 5.0) -> None:
        """Fail what is not confirmed as closed, close the connection and stop the I/O thread,
        waiting at most `timeout` seconds for the broker's goodbye (it may not answer)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if not self._io.started:
            return
        if self._io.in_loop():
            self._close_connection()
            return
        deadline = time.monotonic() + timeout
        self._io.call(self._close_connection)
        self._shut.wait(timeout)
        if self._owns_io:
            self._io.stop(max(0.0, deadline - time.monotonic()))

    # ------------------------------------------------------------------ I/O thread

    def _enter(self, state: State, why: str) -> None:
        """The one place the state changes: checked against `TRANSITIONS`, recorded."""
        old = self.state
        if old is state:
            return
        if state not in TRANSITIONS[old]:
            self.illegal_transitions.append((old, state, why))
            log.error("%s: unexpected transition %s -> %s (%s)", self.purpose, old.value, state.value, why)
        self.transitions.append((old, state, why))
        self.state = state

    def _submit(self, batch: _Batch) -> None:
        if batch.cancelled:
            return
        if self._closed:  # closed while the batch was on its way to this thread
            for index in range(len(batch.items)):
                batch.settle(index, CLOSED)
            return
        self._queue.extend((batch, index) for index in range(len(batch.items)))
        if self.state is State.READY:
            self._pump()
        else:
            self._ensure_connection()

    def _expire_in_loop(self, batch: _Batch, wait: float, expired: threading.Event) -> None:
        batch.cancelled = True
        if not batch.done.is_set():
            self._queue = deque(entry for entry in self._queue if entry[0] is not batch)
            for tag, (owner, index) in self._inflight.unsettled():
                if owner is batch:
                    self._inflight.take(tag)
                    batch.settle(index, f"no broker confirm within {wait:g}s (sent: it may have been published)")
            for tag, (owner, index) in list(self._nacked.items()):
                if owner is batch:
                    del self._nacked[tag]
                    batch.settle(index, f"no broker confirm within {wait:g}s (sent: it may have been published)")
            for index in batch.unsettled():
                batch.settle(index, f"no broker confirm within {wait:g}s (not sent)")
            self._suspects = {entry for entry in self._suspects if entry[0] is not batch}
            if self._queue:
                self._pump()
        expired.set()

    def _pump(self) -> None:
        channel = self._channel
        if channel is None:
            return
        queue, room = self._queue, self.window - len(self._inflight)
        publish = channel.basic_publish
        record = self._inflight.publish
        connection = self._connection
        if connection is not None:
            connection.cork()
        suspects = self._suspects
        try:
            while room > 0 and queue:
                alone = bool(suspects) and queue[0] in suspects
                if alone and self._inflight:
                    break  # a suspect goes alone: wait for what is in flight
                entry = queue.popleft()
                item = entry[0].items[entry[1]]
                publish(item.exchange, item.routing_key, item.body, item.properties, mandatory=True)
                record(entry)
                room -= 1
                if alone:
                    break
        except Exception as exc:  # the connection went away mid-pump: on_close requeues inflight
            queue.appendleft(entry)
            log.warning("publish interrupted: %s", exc)
        finally:
            if connection is not None:
                connection.uncork()

    def _ensure_connection(self) -> None:
        if self.state not in (State.IDLE, State.RECONNECTING) or self._closed:
            return
        self._enter(State.CONNECTING, "messages to send")
        try:
            self._connection = open_connection(
                self._io, self.connector, self.purpose, self._on_open, self._on_open_error, self._on_closed
            )
        except Exception as exc:
            self._on_open_error(None, exc)

    def _on_open(self, connection: pika.SelectConnection) -> None:
        if self._closed:  # closed while connecting: goodbye at once
            connection.close()
            return
        self.connection_count += 1
        self.frame_max = int(connection.params.frame_max or DEFAULT_FRAME_MAX)
        connection.channel(on_open_callback=self._on_channel)

    def _on_channel(self, channel: Channel) -> None:
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(ack_nack_callback=self._on_confirm, callback=lambda _frame: self._on_ready(channel))

    def _on_ready(self, channel: Channel) -> None:
        self._enter(State.READY, "channel in confirm mode")
        self._failed_attempts = 0
        self._channel = channel
        self._inflight.new_channel()
        self._pump()

    def _on_open_error(self, _connection: Any, error: BaseException | str) -> None:
        self._connection = None
        self._channel = None
        self._failed_attempts += 1
        self._last_error = describe_error(error)
        if self._closed:
            self._enter(State.CLOSING, "closed while connecting")
            self._enter(State.CLOSED, "closed while connecting")
            self._shut.set()
            return
        if self._failed_attempts >= self.reconnect_attempts:
            self._fail_all(f"cannot connect to {self.connector.safe_url}: {self._last_error}")
            self._failed_attempts = 0
            self._enter(State.IDLE, f"gave up connecting: {self._last_error}")
            return
        if self._queue or self._inflight:
            self._enter(State.RECONNECTING, f"connect failed: {self._last_error}")
            self._io.ioloop.call_later(backoff(self._failed_attempts), self._ensure_connection)
        else:
            self._enter(State.IDLE, f"connect failed, nothing to send: {self._last_error}")

    def _on_closed(self, _connection: pika.SelectConnection, reason: BaseException) -> None:
        self._connection = None
        self._channel = None
        self._recycling = None
        if getattr(reason, "reply_code", None) in PROTOCOL_ERRORS and not self._closed:
            self._isolate(describe_error(reason))
        self._requeue_inflight()
        if self._closed:
            self._enter(State.CLOSING, "connection closed")
            self._enter(State.CLOSED, "connection closed")
            self._shut.set()
            return
        self._last_error = describe_error(reason)
        self._retry_nacks_until = time.monotonic() + FAILOVER_WINDOW_S
        if not self._queue:
            self._enter(State.IDLE, f"connection lost, nothing to send: {self._last_error}")
            return
        log.warning("%s connection lost (%s); reconnecting", self.purpose, self._last_error)
        hooks.reconnected("publisher", self._last_error)
        self._failed_attempts += 1
        if self._failed_attempts >= self.reconnect_attempts:
            self._fail_all(f"connection lost and not re-established: {self._last_error}")
            self._failed_attempts = 0
            self._enter(State.IDLE, f"gave up reconnecting: {self._last_error}")
            return
        self._enter(State.RECONNECTING, f"connection lost: {self._last_error}")
        self._io.ioloop.call_later(backoff(self._failed_attempts), self._ensure_connection)

    def _on_channel_closed(self, channel: Channel, reason: BaseException) -> None:
        """The broker closed the channel (e.g. an exchange that does not exist): the messages
        in flight on it fail with the broker's reason; the rest go on a new channel. A channel
        closed by `_recycle_channel` fails nothing: what was in flight on it is sent again."""
        if channel is self._recycling:
            self._recycling = None
            self._requeue_inflight()
            connection = self._connection
            if connection is not None and connection.is_open and not self._closed:
                delay = backoff(self._nack_rounds, cap=NACK_BACKOFF_CAP_S)
                self._io.ioloop.call_later(delay, self._reopen_channel)
            return
        if self._channel is not channel and self._channel is not None:
            return
        self._channel = None
        connection = self._connection
        if connection is None or not connection.is_open:
            return  # connection-level close: _on_closed requeues
        text = getattr(reason, "reply_text", "") or str(reason)
        if self.state is State.READY:
            self._enter(State.REPLACING_CHANNEL, f"channel closed by the broker: {text}")
        if getattr(reason, "reply_code", None) in CHANNEL_REFUSALS and not self._closed:
            self._isolate(describe_error(reason))
            self._requeue_inflight()
            connection.channel(on_open_callback=self._on_channel)
            return
        for _tag, (batch, index) in self._inflight.take_all():
            batch.settle(index, f"channel closed by the broker: {text}")
        if not self._closed:
            connection.channel(on_open_callback=self._on_channel)

    def _isolate(self, reason: str) -> None:
        """The broker refused something in flight without saying what: a suspect refused while
        alone in flight fails alone; otherwise everything in flight becomes a suspect."""
        entries = [*self._inflight.values(), *self._nacked.values()]
        if len(entries) == 1 and entries[0] in self._suspects:
            batch, index = entries[0]
            self._suspects.discard(entries[0])
            self._inflight.take_all()
            self._nacked.clear()
            log.warning(
                "%s: %s refused by the broker (%s); not sent again", self.purpose, batch.items[index].label, reason
            )
            batch.settle(index, f"{REFUSED}: {reason}")
            return
        if entries:
            log.warning(
                "%s: the broker refused one of %d messages (%s); sending them one at a time",
                self.purpose,
                len(entries),
                reason,
            )
        self._suspects.update(entries)

    def _reopen_channel(self) -> None:
        connection = self._connection
        if connection is not None and connection.is_open and self._channel is None and not self._closed:
            connection.channel(on_open_callback=self._on_channel)

    def _recycle_channel(self) -> None:
        """Replace the current channel (it nacked during a failover): stop publishing on it,
        close it, and open a fresh one once it is closed (`_on_channel_closed`)."""
        channel = self._channel
        if channel is None or self._recycling is not None:
            return
        self._channel = None
        self._recycling = channel
        self._nack_rounds += 1
        self._enter(State.REPLACING_CHANNEL, "nacked during a failover")
        log.warning("%s: the broker nacked during a failover; publishing again on a new channel", self.purpose)
        if channel.is_open:
            channel.close()

    def _requeue_inflight(self) -> None:
        if self._inflight or self._nacked:
            unconfirmed = sorted([*self._inflight.take_all(), *self._nacked.items()], key=lambda pair: pair[0])
            live = [entry for _tag, entry in unconfirmed if not entry[0].cancelled]
            self._queue.extendleft(reversed(live))
            self._nacked.clear()

    def _fail_all(self, reason: str) -> None:
        self._suspects.clear()
        for batch, index in [*self._inflight.values(), *self._nacked.values(), *self._queue]:
            batch.settle(index, reason)
        self._inflight.take_all()
        self._nacked.clear()
        self._queue.clear()

    def _on_confirm(self, frame: Method) -> None:
        method = frame.method
        tag = method.delivery_tag
        nack = isinstance(method, pika.spec.Basic.Nack)
        if nack and time.monotonic() < self._retry_nacks_until and not self._closed:
            self._nacked.update(self._inflight.settle_tagged(tag, method.multiple))  # sent again on the next channel
            self._recycle_channel()
            return
        settled = self._inflight.settle(tag, method.multiple)
        suspects = self._suspects
        for entry in settled:
            entry[0].settle(entry[1], NACKED if nack else None)
            if suspects:
                suspects.discard(entry)
        if not nack and settled and self._recycling is None:  # the current channel confirms: healthy
            self._nack_rounds = 0
        if self._queue:
            self._pump()

    def _on_return(
        self, _channel: Channel, method: pika.spec.Basic.Return, properties: pika.BasicProperties, _body: bytes
    ) -> None:
        """basic.return comes before the message's ack: match it to the oldest in-flight
        message with that id that was not returned yet."""
        self.unroutable_count += 1
        for batch, index in self._inflight.values():
            item = batch.items[index]
            if item.properties.message_id == properties.message_id and index not in batch.returned:
                batch.returned.add(index)
                batch.unroutable.append(index)
                break
        log.warning(
            "unroutable message returned by the broker (%s %s): exchange %r routing key %r has no bound queue",
            method.reply_code,
            method.reply_text,
            method.exchange,
            method.routing_key,
        )

    def _close_connection(self) -> None:
        self._fail_all(CLOSED)
        connection = self._connection
        if connection is not None and connection.is_open:
            self._enter(State.CLOSING, "close()")
            connection.close()
        elif self.state is State.CONNECTING:
            self._enter(State.CLOSING, "close() while connecting")  # the attempt ends in a callback
            self._shut.set()  # nothing to wait for: the I/O loop may stop now
        else:
            self._enter(State.CLOSING, "close()")
            self._enter(State.CLOSED, "close(): no connection open")
            self._shut.set()


def ensure_reachable(connector: RabbitMqConnector, timeout: float = 10.0) -> None:
    """Open and close a blocking connection: a clear error now instead of a timeout later."""
    params = connector.parameters("check")
    params.socket_timeout = timeout
    try:
        pika.BlockingConnection(params).close()
    except Exception as exc:
        raise BrokerUnavailable(f"cannot connect to {connector.safe_url}: {exc or type(exc).__name__}") from None
