"""A fake AMQP broker for unit tests of the runtime's I/O-thread code: an I/O loop run inline,
connections and channels that record what is sent, and synthetic pika frames (acks, nacks,
returns, deliveries, cancels, closes) that a test sends in the order a broker would.

`Broker.open_connection` stands in for `bus_runtime.iothread.open_connection` (monkeypatch it
into the module under test); every connection attempt is recorded and the test opens it
(`accept`) or fails it (`refuse`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pika
from pika.frame import Method


class FakeLoop:
    """`call_later` keeps the callbacks; the test fires them with `run_timers()`."""

    def __init__(self) -> None:
        self.timers: list[tuple[float, Callable[[], None]]] = []

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        self.timers.append((delay, callback))

    def run_timers(self) -> list[float]:
        timers, self.timers = self.timers, []
        for _delay, callback in timers:
            callback()
        return [delay for delay, _ in timers]


class FakeIo:
    """The I/O thread, run inline: `call` runs at once on the caller's thread, one caller at a
    time (as on the one real I/O thread), then whatever the broker answered meanwhile (`soon`)."""

    def __init__(self, _name: str = "fake-io") -> None:
        self.ioloop = FakeLoop()
        self.started = False
        self.connect_attempts = 0  # as `IoThread`: picks the node of a multi-URL connector
        self.soon: list[Callable[[], None]] = []
        self.lock = threading.RLock()

    def start(self) -> None:
        self.started = True

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        with self.lock:
            fn(*args)
            while self.soon:
                self.soon.pop(0)()

    def in_loop(self) -> bool:
        return True

    def stop(self, timeout: float = 10.0) -> None:
        self.started = False


class FakeChannel:
    def __init__(self, number: int, broker: Broker | None = None) -> None:
        self.number = number
        self.channel_number = number
        self.broker = broker or Broker()
        self.is_open = True
        self.published: list[str] = []  # message ids, in order
        self.on_close: Callable[..., None] | None = None
        self.on_return: Callable[..., None] | None = None
        self.on_confirm: Callable[[Method], None] | None = None
        self.on_cancel: Callable[[Method], None] | None = None
        self.close_requested = False
        # consuming
        self.prefetch: int | None = None
        self.consumers: dict[str, tuple[str, Callable[..., None]]] = {}  # consumer tag: (queue, callback)
        self.cancelled: list[str] = []  # consumer tags, in order
        self.held_cancel_oks: list[tuple[str, Callable[[Any], None]]] = []  # with `broker.hold_cancel_oks`
        self.acks: list[tuple[int, bool]] = []  # (delivery tag, multiple)
        self.requeued: list[int] = []  # delivery tags nacked with requeue

    def add_on_close_callback(self, callback: Callable[..., None]) -> None:
        self.on_close = callback

    def add_on_return_callback(self, callback: Callable[..., None]) -> None:
        self.on_return = callback

    def confirm_delivery(self, ack_nack_callback: Callable[[Method], None], callback: Callable[[Any], None]) -> None:
        self.on_confirm = ack_nack_callback
        callback(None)  # Confirm.SelectOk

    def basic_publish(self, exchange: str, routing_key: str, body: bytes, properties: Any, mandatory: bool) -> None:
        if not self.is_open:
            raise pika.exceptions.ChannelWrongStateError("Channel is closed.")
        self.published.append(properties.message_id)

    def close(self) -> None:
        self.close_requested = True
        if self.broker.answer_closes:
            self.is_open = False
            assert self.on_close is not None
            self.on_close(self, pika.exceptions.ChannelClosedByClient(200, "Normal shutdown"))

    def add_on_cancel_callback(self, callback: Callable[[Method], None]) -> None:
        self.on_cancel = callback

    def queue_declare(self, queue: str, passive: bool, callback: Callable[[Any], None]) -> None:
        assert passive, "the runtime only checks queues"
        if queue in self.broker.queues:
            callback(Method(self.number, pika.spec.Queue.DeclareOk(queue)))
        else:
            self.closed(404, f"NOT_FOUND - no queue '{queue}' in vhost '/'")

    def basic_qos(self, prefetch_count: int, global_qos: bool, callback: Callable[[Any], None]) -> None:
        assert not global_qos
        self.prefetch = prefetch_count
        callback(Method(self.number, pika.spec.Basic.QosOk()))

    def basic_consume(self, queue: str, on_message_callback: Callable[..., None], auto_ack: bool) -> str:
        assert not auto_ack
        tag = f"ctag{self.number}.{len(self.consumers) + len(self.cancelled) + 1}"
        self.consumers[tag] = (queue, on_message_callback)
        return tag

    def basic_cancel(self, consumer_tag: str, callback: Callable[[Any], None] | None = None) -> None:
        self.cancelled.append(consumer_tag)
        if callback is not None and self.broker.hold_cancel_oks:
            self.held_cancel_oks.append((consumer_tag, callback))  # deliveries may still come meanwhile
            return
        self.consumers.pop(consumer_tag, None)
        if callback is not None:
            callback(Method(self.number, pika.spec.Basic.CancelOk(consumer_tag)))

    def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        self.acks.append((delivery_tag, multiple))

    def basic_nack(self, delivery_tag: int, multiple: bool = False, requeue: bool = True) -> None:
        assert requeue and not multiple
        self.requeued.append(delivery_tag)

    @property
    def acked(self) -> set[int]:
        """Every delivery tag an ack covers (a `multiple` one covers all before it not requeued)."""
        done: set[int] = set()
        for tag, multiple in self.acks:
            done |= set(range(1, tag + 1)) - set(self.requeued) if multiple else {tag}
        return done

    # frames from the broker
    def deliver(self, queue: str, tag: int, body: bytes = b"{}", routing_key: str = "rk") -> None:
        """A `basic.deliver` on the consumer of `queue`."""
        [(consumer_tag, callback)] = [(t, cb) for t, (q, cb) in self.consumers.items() if q == queue]
        method = pika.spec.Basic.Deliver(consumer_tag, tag, False, "exchange", routing_key)
        callback(self, method, pika.BasicProperties(headers={}, message_id=f"m{tag}"), body)

    def cancel_from_broker(self, queue: str) -> None:
        """The broker's `basic.cancel` (the queue was deleted)."""
        [consumer_tag] = [t for t, (q, _cb) in self.consumers.items() if q == queue]
        del self.consumers[consumer_tag]
        assert self.on_cancel is not None
        self.on_cancel(Method(self.number, pika.spec.Basic.Cancel(consumer_tag)))

    def release_cancel_oks(self) -> None:
        oks, self.held_cancel_oks = self.held_cancel_oks, []
        for consumer_tag, callback in oks:
            self.consumers.pop(consumer_tag, None)
            callback(Method(self.number, pika.spec.Basic.CancelOk(consumer_tag)))

    def ack(self, tag: int, multiple: bool = False) -> None:
        assert self.on_confirm is not None
        self.on_confirm(Method(self.number, pika.spec.Basic.Ack(delivery_tag=tag, multiple=multiple)))

    def nack(self, tag: int, multiple: bool = False) -> None:
        assert self.on_confirm is not None
        self.on_confirm(Method(self.number, pika.spec.Basic.Nack(delivery_tag=tag, multiple=multiple)))

    def returned(self, message_id: str) -> None:
        assert self.on_return is not None
        method = pika.spec.Basic.Return(reply_code=312, reply_text="NO_ROUTE", exchange="x", routing_key="k")
        self.on_return(self, method, pika.BasicProperties(message_id=message_id), b"")

    def closed(self, reply_code: int = 404, reply_text: str = "NOT_FOUND - no exchange 'x'") -> None:
        self.is_open = False
        assert self.on_close is not None
        self.on_close(self, pika.exceptions.ChannelClosedByBroker(reply_code, reply_text))


class FakeConnection:
    def __init__(self, node: int, broker: Broker, port: int = 5672) -> None:
        self.node = node
        self.port = port  # of the endpoint this attempt went to
        self.broker = broker
        self.is_open = False
        self.channels: list[FakeChannel] = []
        self.params = pika.ConnectionParameters(frame_max=131_072)  # as negotiated with the broker

    def channel(self, on_open_callback: Callable[[FakeChannel], None]) -> None:
        channel = FakeChannel(len(self.channels) + 1, self.broker)
        self.channels.append(channel)
        on_open_callback(channel)

    def cork(self) -> None: ...

    def uncork(self) -> None: ...

    def close(self) -> None:
        if self.broker.hold_closes:  # the broker's close-ok never comes (the test may drop the socket)
            self.is_open = False
            return
        self.lost("closed by the client")

    def lost(self, why: str = "Stream connection lost") -> None:
        """The socket went away: channels close first, then the connection (pika's order)."""
        self.is_open = False
        for channel in self.channels:
            if channel.is_open:
                channel.is_open = False
                assert channel.on_close is not None
                channel.on_close(channel, pika.exceptions.StreamLostError(why))
        self.broker.on_close(self, pika.exceptions.StreamLostError(why))


class Broker:
    """Stands in for `open_connection`: every connection attempt is recorded; the test opens
    it (`accept`) or fails it (`refuse`), or, with `accept_at_once`, the I/O loop opens it as
    soon as the call that asked for it returns.

    `queues` exist for passive declares; `answer_closes` closes a channel the client closes at
    once (else the test calls `closed`); `hold_cancel_oks` keeps the `cancel-ok`s until
    `release_cancel_oks`; `hold_closes` never answers a connection's close."""

    def __init__(self) -> None:
        self.connections: list[FakeConnection] = []
        self.queues: set[str] = set()
        self.answer_closes = False
        self.hold_cancel_oks = False
        self.hold_closes = False
        self.accept_at_once = False
        self.on_open: Callable[[Any], None] = lambda _c: None
        self.on_open_error: Callable[[Any, BaseException], None] = lambda _c, _e: None
        self.on_close: Callable[[Any, BaseException], None] = lambda _c, _e: None

    def open_connection(self, io: Any, connector: Any, purpose: str, on_open: Any, on_error: Any, on_close: Any) -> Any:
        self.on_open, self.on_open_error, self.on_close = on_open, on_error, on_close
        endpoint = io.connect_attempts
        io.connect_attempts += 1
        port = connector.parameters(purpose, endpoint).port
        connection = FakeConnection(len(self.connections), self, port)
        self.connections.append(connection)
        if self.accept_at_once:
            io.soon.append(self.accept)
        return connection

    @property
    def last(self) -> FakeConnection:
        return self.connections[-1]

    def accept(self) -> FakeChannel:
        connection = self.last
        connection.is_open = True
        self.on_open(connection)
        return connection.channels[-1]

    @staticmethod
    def ioloop_delays(owner: Any) -> list[float]:
        """Fire the pending timers (reconnect, channel replacement) of `owner`'s I/O loop
        (`owner._io`); their delays."""
        loop: FakeLoop = owner._io.ioloop
        return loop.run_timers()

    def refuse(self) -> None:
        self.on_open_error(self.last, ConnectionRefusedError(111, "Connection refused"))
