"""The consuming connection's lifecycle: connect, check the queues, consume, reconnect.

`ConsumerConnection` runs on the consumer's I/O thread. It opens the connection, checks every
queue with a passive declare (a missing one fails the start with `TopologyMissing`), opens the
consuming channel with its prefetch and registers one consumer per subscription. A lost
connection, a channel closed by the broker or a consumer cancelled by the broker (queue deleted)
all lead to a fresh connection, after a backoff, which checks the queues again. It knows nothing
about handlers, acks or retries: it reports to its `ConsumerEvents`.

Where it is lives in one field, `state` (a `State`), changed only by `_enter`, checked against
`TRANSITIONS` and recorded in `transitions` (an unexpected change goes to `illegal_transitions`
and the log: a bug). The stop sequence is `draining` (consumers cancelled, the handlers in hand
finishing), then `closing` and `closed`.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import pika
from pika.channel import Channel
from pika.frame import Method

from bus_runtime.connector import RabbitMqConnector
from bus_runtime.errors import BrokerUnavailable, BusError, TopologyMissing, describe_error
from bus_runtime.iothread import IoThread, backoff, open_connection
from bus_runtime.subscriber import Subscription

log = logging.getLogger("bus_runtime.consumer")


class State(enum.Enum):
    """Where the consuming connection is (I/O-thread state; `ConsumerConnection.state`)."""

    IDLE = "idle"  # created, start() not called yet
    CONNECTING = "connecting"  # a connection is opening (the next node of the list after a failure)
    CHECKING = "checking queues"  # passive declares of every queue, then the consuming channel opens
    CONSUMING = "consuming"  # ready: consumers registered, deliveries flowing
    RECONNECTING = "reconnecting"  # the connection is lost; the next attempt waits for its backoff
    DRAINING = "draining"  # stop(): consumers cancelled, the deliveries in hand being settled
    CLOSING = "closing"  # the connection is closing (stop, abort, or a failed start)
    CLOSED = "closed"  # for good: a consumer is not started twice


_S = State
TRANSITIONS: dict[State, frozenset[State]] = {
    _S.IDLE: frozenset({_S.CONNECTING, _S.CLOSING, _S.CLOSED}),
    _S.CONNECTING: frozenset({_S.CHECKING, _S.RECONNECTING, _S.DRAINING, _S.CLOSING, _S.CLOSED}),
    _S.CHECKING: frozenset({_S.CONSUMING, _S.RECONNECTING, _S.DRAINING, _S.CLOSING, _S.CLOSED}),
    _S.CONSUMING: frozenset({_S.RECONNECTING, _S.DRAINING, _S.CLOSING}),
    _S.RECONNECTING: frozenset({_S.CONNECTING, _S.DRAINING, _S.CLOSING, _S.CLOSED}),
    _S.DRAINING: frozenset({_S.CLOSING, _S.CLOSED}),
    _S.CLOSING: frozenset({_S.CLOSED}),
    _S.CLOSED: frozenset(),
}
STOPPING = frozenset({_S.DRAINING, _S.CLOSING, _S.CLOSED})
"""States in which nothing new is consumed: a connection that opens now is closed at once."""


class ConsumerEvents(Protocol):
    """What the connection reports (on the I/O thread)."""

    def on_consuming(self, channel: Channel, reconnected: bool) -> None: ...

    def on_delivery(
        self, sub: Subscription, method: pika.spec.Basic.Deliver, properties: pika.BasicProperties, body: bytes
    ) -> None: ...

    def on_channel_lost(self) -> None: ...

    def on_start_failed(self, error: BusError) -> None: ...

    def on_cancelled(self) -> None: ...

    def on_closed(self) -> None: ...


class ConsumerConnection:
    def __init__(
        self,
        io: IoThread,
        connector: RabbitMqConnector,
        subscriptions: Sequence[Subscription],
        prefetch: int,
        events: ConsumerEvents,
    ) -> None:
        self.io = io
        self.connector = connector
        self.subscriptions = subscriptions
        self.prefetch = prefetch
        self.events = events
        self.state = State.IDLE
        self.transitions: deque[tuple[State, State, str]] = deque(maxlen=200)  # (from, to, why)
        self.illegal_transitions: list[tuple[State, State, str]] = []  # a bug if ever non-empty
        # history, not a state: once it consumed, a failure reconnects instead of failing the start
        self.consumed_once = False
        self.cancels_pending = 0
        self._connection: pika.SelectConnection | None = None
        self._channel: Channel | None = None
        self._by_consumer_tag: dict[str, Subscription] = {}
        self._to_check: list[str] = []
        self._missing: list[str] = []
        self._failed_attempts = 0
        self.paused: set[str] = set()  # queues a circuit breaker paused: not consumed, even after a reconnect

    @property
    def stopping(self) -> bool:
        """Stopped taking deliveries: draining, closing or closed."""
        return self.state in STOPPING

    def _enter(self, state: State, why: str) -> None:
        """The one place the state changes: checked against `TRANSITIONS`, recorded."""
        old = self.state
        if old is state:
            return
        if state not in TRANSITIONS[old]:
            self.illegal_transitions.append((old, state, why))
            log.error("consumer: unexpected transition %s -> %s (%s)", old.value, state.value, why)
        self.transitions.append((old, state, why))
        self.state = state

    # ------------------------------------------------------------------ circuit-breaker hooks (I/O thread)

    def pause(self, queue: str) -> None:
        """Stop consuming `queue` (its circuit breaker opened); what it holds stays unacked."""
        self.paused.add(queue)
        channel = self._channel
        for tag, sub in list(self._by_consumer_tag.items()):
            if sub.queue == queue and channel is not None and channel.is_open:
                del self._by_consumer_tag[tag]
                channel.basic_cancel(tag)

    def resume(self, queue: str) -> None:
        """Consume `queue` again (its circuit breaker closed)."""
        self.paused.discard(queue)
        channel = self._channel
        if channel is None or not channel.is_open or self.state is not State.CONSUMING:
            return  # the next connection consumes it
        for sub in self.subscriptions:
            if sub.queue == queue and sub not in self._by_consumer_tag.values():
                self._by_consumer_tag[channel.basic_consume(queue, self._on_message, auto_ack=False)] = sub

    def probe(self, queue: str, on_empty: Callable[[], None]) -> None:
        """Take one message of a paused queue (`basic.get`), delivered like any other; `on_empty`
        when the queue has none (or the channel is gone)."""
        channel = self._channel
        sub = next((s for s in self.subscriptions if s.queue == queue), None)
        if channel is None or not channel.is_open or sub is None or self.state is not State.CONSUMING:
            on_empty()
            return

        def empty(_frame: Any) -> None:
            on_empty()

        def got(_channel: Channel, method: Any, properties: pika.BasicProperties, body: bytes) -> None:
            channel.callbacks.remove(channel.channel_number, pika.spec.Basic.GetEmpty, empty)
            self.events.on_delivery(sub, method, properties, body)

        channel.callbacks.add(channel.channel_number, pika.spec.Basic.GetEmpty, empty, one_shot=True)
        channel.basic_get(queue, got, auto_ack=False)

    # ------------------------------------------------------------------ commands (I/O thread)

    def connect(self) -> None:
        if self.stopping:
            return  # stopped meanwhile: close() reports the end
        self._enter(State.CONNECTING, "start" if self.state is State.IDLE else "next attempt")
        try:
            self._connection = open_connection(
                self.io, self.connector, "consumer", self._on_open, self._on_open_error, self._on_closed
            )
        except Exception as exc:
            self._on_open_error(None, exc)

    def restart(self, reason: str) -> None:
        """Close the connection to start over on a fresh one (the broker redelivers)."""
        connection = self._connection
        if not self.stopping and connection is not None and connection.is_open:
            log.warning("%s; reopening the connection", reason)
            connection.close()

    def cancel_consumers(self) -> None:
        """Stop taking messages; `events.on_cancelled()` once the broker confirmed it."""
        if self.state in (State.CLOSING, State.CLOSED):
            self.cancels_pending = 0
            self.events.on_cancelled()
            return
        was_consuming = self.state is State.CONSUMING
        self._enter(State.DRAINING, "stop: consumers cancelled")
        channel = self._channel
        if not was_consuming or channel is None or not channel.is_open:
            self.cancels_pending = 0
            self.events.on_cancelled()
            return
        self.cancels_pending = len(self._by_consumer_tag)
        for consumer_tag in list(self._by_consumer_tag):
            channel.basic_cancel(consumer_tag, callback=self._on_cancel_ok)
        if self.cancels_pending == 0:
            self.events.on_cancelled()

    def close(self) -> None:
        """Close for good; `events.on_closed()` once closed (again if asked again)."""
        if self.state is State.CLOSED:
            self.events.on_closed()
            return
        connection = self._connection
        if connection is not None and connection.is_open:
            self._enter(State.CLOSING, "close()")
            connection.close()
        elif connection is not None:  # opening, or already closing: its callback ends it
            self._enter(State.CLOSING, "close() while the connection opens or closes")
        else:
            self._enter(State.CLOSING, "close()")
            self._closed("close(): no connection open")

    @property
    def connection(self) -> pika.SelectConnection | None:
        return self._connection

    def _closed(self, why: str) -> None:
        self._enter(State.CLOSED, why)
        self.events.on_closed()

    # ------------------------------------------------------------------ connection

    def _on_open_error(self, _connection: Any, error: BaseException | str) -> None:
        self._connection = None
        if self.stopping:
            self._closed(f"connect failed while stopping: {describe_error(error)}")
            return
        if not self.consumed_once and self.io.connect_attempts < len(self.connector.endpoints):
            self.connect()  # another node of the cluster may answer
            return
        if not self.consumed_once:
            self._enter(State.CLOSED, f"start failed: {describe_error(error)}")
            self.events.on_start_failed(
                BrokerUnavailable(f"cannot connect to {self.connector.safe_url}: {describe_error(error)}")
            )
            return
        self._retry_connect(error)

    def _retry_connect(self, reason: BaseException | str) -> None:
        self._failed_attempts += 1
        delay = backoff(self._failed_attempts, first=0.2, cap=10.0)
        self._enter(State.RECONNECTING, f"connection lost: {describe_error(reason)}")
        log.warning("consumer connection lost (%s); reconnecting in %.1fs", describe_error(reason), delay)
        self.io.ioloop.call_later(delay, self._reconnect)

    def _reconnect(self) -> None:
        if self.state is State.RECONNECTING:  # not stopped during the backoff
            self.connect()

    def _on_closed(self, _connection: pika.SelectConnection, reason: BaseException) -> None:
        self._connection = None
        self._channel = None
        self._by_consumer_tag.clear()
        self.cancels_pending = 0
        self.events.on_channel_lost()
        if self.stopping:
            self._closed(f"connection closed: {describe_error(reason)}")
            return
        if not self.consumed_once:
            self._enter(State.CLOSED, f"start failed: connection closed ({describe_error(reason)})")
            self.events.on_start_failed(BrokerUnavailable(f"connection closed during start: {describe_error(reason)}"))
            return
        self._retry_connect(reason)

    # ------------------------------------------------------------------ queue check

    def _on_open(self, connection: pika.SelectConnection) -> None:
        if self.stopping:  # closed (or stopped) while it opened
            self._enter(State.CLOSING, "connection opened while stopping")
            connection.close()
            return
        self._enter(State.CHECKING, "connection open")
        self._to_check = [sub.queue for sub in self.subscriptions]
        self._missing = []
        connection.channel(on_open_callback=self._on_check_channel)

    def _on_check_channel(self, channel: Channel) -> None:
        channel.add_on_close_callback(self._on_check_channel_closed)
        self._check_next(channel)

    def _check_next(self, channel: Channel) -> None:
        if not self._to_check:
            channel.close()
            return
        channel.queue_declare(self._to_check[0], passive=True, callback=lambda _frame: self._checked(channel))

    def _checked(self, channel: Channel) -> None:
        self._to_check.pop(0)
        self._check_next(channel)

    def _on_check_channel_closed(self, _channel: Channel, reason: BaseException) -> None:
        connection = self._connection
        if connection is None or not connection.is_open or self.state is not State.CHECKING:
            return  # lost, or stopped during the check: the close follows
        code = getattr(reason, "reply_code", None)
        if self._to_check and code == 404:
            self._missing.append(self._to_check.pop(0))
            connection.channel(on_open_callback=self._on_check_channel)
            return
        if self._to_check:  # refused for another reason (e.g. 403 access refused)
            self._fail_start(BusError(f"cannot check queue {self._to_check[0]!r}: {reason}"))
            return
        if self._missing:
            self._fail_start(TopologyMissing(self.connector.vhost, self._missing))
            return
        connection.channel(on_open_callback=self._on_consume_channel)

    def _fail_start(self, error: BusError) -> None:
        if not self.consumed_once:
            self._enter(State.CLOSING, f"start failed: {error}")
            self.events.on_start_failed(error)
        else:
            log.error("%s", error)  # after a reconnect: keep trying, an operator can fix it
        if self._connection is not None:
            self._connection.close()

    # ------------------------------------------------------------------ consuming channel

    def _on_consume_channel(self, channel: Channel) -> None:
        channel.add_on_close_callback(self._on_channel_closed)
        # Per-consumer QoS: quorum queues refuse consumers on a channel with global QoS.
        channel.basic_qos(
            prefetch_count=self.prefetch, global_qos=False, callback=lambda _frame: self._start_consuming(channel)
        )

    def _start_consuming(self, channel: Channel) -> None:
        if self.state is not State.CHECKING:
            return  # stopped while the channel opened: the close follows
        self._channel = channel
        channel.add_on_cancel_callback(self._on_cancelled_by_broker)
        for sub in self.subscriptions:
            if sub.queue in self.paused:
                continue
            tag = channel.basic_consume(sub.queue, self._on_message, auto_ack=False)
            self._by_consumer_tag[tag] = sub
        self._failed_attempts = 0
        reconnected = self.consumed_once
        self.consumed_once = True
        self._enter(State.CONSUMING, f"{len(self._by_consumer_tag)} consumer(s) registered")
        self.events.on_consuming(channel, reconnected)

    def _on_message(
        self, _channel: Channel, method: pika.spec.Basic.Deliver, properties: pika.BasicProperties, body: bytes
    ) -> None:
        self.events.on_delivery(self._by_consumer_tag[method.consumer_tag], method, properties, body)

    def _on_cancelled_by_broker(self, frame: Method) -> None:
        """The broker cancelled a consumer (its queue was deleted): reconnect, which checks
        the queues again and keeps retrying, loudly, until the topology is back."""
        sub = self._by_consumer_tag.get(frame.method.consumer_tag)
        log.error("the broker cancelled consuming %s (queue deleted?)", sub.queue if sub else "a queue")
        connection = self._connection
        if not self.stopping and connection is not None and connection.is_open:
            connection.close()

    def _on_channel_closed(self, channel: Channel, reason: BaseException) -> None:
        """A channel closed by the broker takes its delivery tags with it: start over on a
        fresh connection (the broker redelivers what was not acked)."""
        if channel is self._channel:
            self.restart(f"consumer channel closed ({describe_error(reason)})")

    def _on_cancel_ok(self, _frame: Method) -> None:
        self.cancels_pending -= 1
        if self.cancels_pending == 0:
            self.events.on_cancelled()
