"""A fake AMQP broker for unit tests of the runtime's I/O-thread code: an I/O loop run inline,
connections and channels that record what is sent, and synthetic pika frames (acks, nacks,
returns, deliveries, cancels, closes) that a test sends in the order a broker would.

`Broker.open_connection` stands in for `bus_runtime.iothread.open_connection` (monkeypatch it
into the module under test); every connection attempt is recorded and the test opens it
(`accept`) or fails it (`refuse`).
"""

from __future__ import annotations

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
    """The I/O thread, run inline: `call` runs at once on the caller's thread."""

    def __init__(self) -> None:
        self.ioloop = FakeLoop()
        self.started = False

    def start(self) -> None:
        self.started = True

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        fn(*args)

    def in_loop(self) -> bool:
        return True

    def stop(self, timeout: float = 10.0) -> None:
        self.started = False


class FakeChannel:
    def __init__(self, number: int) -> None:
        self.number = number
        self.is_open = True
        self.published: list[str] = []  # message ids, in order
        self.on_close: Callable[..., None] | None = None
        self.on_return: Callable[..., None] | None = None
        self.on_confirm: Callable[[Method], None] | None = None
        self.close_requested = False

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

    # frames from the broker
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
    def __init__(self, node: int, broker: Broker) -> None:
        self.node = node
        self.broker = broker
        self.is_open = False
        self.channels: list[FakeChannel] = []
        self.params = pika.ConnectionParameters(frame_max=131_072)  # as negotiated with the broker

    def channel(self, on_open_callback: Callable[[FakeChannel], None]) -> None:
        channel = FakeChannel(len(self.channels) + 1)
        self.channels.append(channel)
        on_open_callback(channel)

    def cork(self) -> None: ...

    def uncork(self) -> None: ...

    def close(self) -> None:
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
    it (`accept`) or fails it (`refuse`)."""

    def __init__(self) -> None:
        self.connections: list[FakeConnection] = []
        self.on_open: Callable[[Any], None] = lambda _c: None
        self.on_open_error: Callable[[Any, BaseException], None] = lambda _c, _e: None
        self.on_close: Callable[[Any, BaseException], None] = lambda _c, _e: None

    def open_connection(self, io: Any, connector: Any, purpose: str, on_open: Any, on_error: Any, on_close: Any) -> Any:
        self.on_open, self.on_open_error, self.on_close = on_open, on_error, on_close
        connection = FakeConnection(len(self.connections), self)
        self.connections.append(connection)
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
