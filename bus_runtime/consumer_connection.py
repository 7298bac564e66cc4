"""The consuming connection's lifecycle: connect, check the queues, consume, reconnect.

`ConsumerConnection` runs on the consumer's I/O thread. It opens the connection, checks every
queue with a passive declare (a missing one fails the start with `TopologyMissing`), opens the
consuming channel with its prefetch and registers one consumer per subscription. A lost
connection, a channel closed by the broker or a consumer cancelled by the broker (queue deleted)
all lead to a fresh connection, after a backoff, which checks the queues again. It knows nothing
about handlers, acks or retries: it reports to its `ConsumerEvents`.
"""

from __future__ import annotations

import logging
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
        self.started = False  # consuming at least once: later failures reconnect instead of failing
        self.stopping = False
        self.cancels_pending = 0
        self._connection: pika.SelectConnection | None = None
        self._channel: Channel | None = None
        self._by_consumer_tag: dict[str, Subscription] = {}
        self._to_check: list[str] = []
        self._missing: list[str] = []
        self._failed_attempts = 0
        self.paused: set[str] = set()  # queues a circuit breaker paused: not consumed, even after a reconnect

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
        if channel is None or not channel.is_open or self.stopping:
            return  # the next connection consumes it
        for sub in self.subscriptions:
            if sub.queue == queue and sub not in self._by_consumer_tag.values():
                self._by_consumer_tag[channel.basic_consume(queue, self._on_message, auto_ack=False)] = sub

    def probe(self, queue: str, on_empty: Callable[[], None]) -> None:
        """Take one message of a paused queue (`basic.get`), delivered like any other; `on_empty`
        when the queue has none (or the channel is gone)."""
        channel = self._channel
        sub = next((s for s in self.subscriptions if s.queue == queue), None)
        if channel is None or not channel.is_open or sub is None or self.stopping:
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
            self.events.on_closed()
            return
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
        self.stopping = True
        channel = self._channel
        if channel is None or not channel.is_open:
            self.cancels_pending = 0
            self.events.on_cancelled()
            return
        self.cancels_pending = len(self._by_consumer_tag)
        for consumer_tag in list(self._by_consumer_tag):
            channel.basic_cancel(consumer_tag, callback=self._on_cancel_ok)
        if self.cancels_pending == 0:
            self.events.on_cancelled()

    def close(self) -> None:
        self.stopping = True
        if self._connection is not None and self._connection.is_open:
            self._connection.close()
        elif self._connection is None:
            self.events.on_closed()

    @property
    def connection(self) -> pika.SelectConnection | None:
        return self._connection

    # ------------------------------------------------------------------ connection

    def _on_open_error(self, _connection: Any, error: BaseException | str) -> None:
        self._connection = None
        if not self.started and self.io.connect_attempts < len(self.connector.endpoints):
            self.connect()  # another node of the cluster may answer
            return
        if not self.started:
            self.events.on_start_failed(
                BrokerUnavailable(f"cannot connect to {self.connector.safe_url}: {describe_error(error)}")
            )
            return
        self._retry_connect(error)

    def _retry_connect(self, reason: BaseException | str) -> None:
        if self.stopping:
            self.events.on_closed()
            return
        self._failed_attempts += 1
        delay = backoff(self._failed_attempts, first=0.2, cap=10.0)
        log.warning("consumer connection lost (%s); reconnecting in %.1fs", describe_error(reason), delay)
        self.io.ioloop.call_later(delay, self.connect)

    def _on_closed(self, _connection: pika.SelectConnection, reason: BaseException) -> None:
        self._connection = None
        self._channel = None
        self._by_consumer_tag.clear()
        self.cancels_pending = 0
        self.events.on_channel_lost()
        if self.stopping:
            self.events.on_closed()
            return
        if not self.started:
            self.events.on_start_failed(BrokerUnavailable(f"connection closed during start: {describe_error(reason)}"))
            return
        self._retry_connect(reason)

    # ------------------------------------------------------------------ queue check

    def _on_open(self, connection: pika.SelectConnection) -> None:
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
        if connection is None or not connection.is_open:
            return
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
        if not self.started:
            self.events.on_start_failed(error)
            self.stopping = True
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
        self._channel = channel
        channel.add_on_cancel_callback(self._on_cancelled_by_broker)
        for sub in self.subscriptions:
            if sub.queue in self.paused:
                continue
            tag = channel.basic_consume(sub.queue, self._on_message, auto_ack=False)
            self._by_consumer_tag[tag] = sub
        self._failed_attempts = 0
        reconnected = self.started
        self.started = True
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
