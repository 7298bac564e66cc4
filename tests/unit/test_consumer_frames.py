"""The consumer's lifecycle driven without a broker: the fake broker of `fake_amqp` (an inline
I/O loop, fake connections and channels) sends the frames a broker would, in its order, and
each test asserts the states the consuming connection went through and what the broker saw
(acks, returns, cancels). Whatever a test drives, no state change outside `TRANSITIONS`.

The first tests drive `ConsumerConnection` alone (connect, check, consume, reconnect, stop);
the last ones the whole `RabbitMqEventConsumer` (and its asyncio face) with a worker pool the
test runs by hand, so a handler is "running" exactly when the test says."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from meiga import isSuccess

from bus_runtime import Event, EventSubscriber
from bus_runtime import consumer as consumer_module
from bus_runtime import consumer_connection as connection_module
from bus_runtime.aio import AsyncRabbitMqEventConsumer
from bus_runtime.connector import RabbitMqConnector
from bus_runtime.consumer import RabbitMqEventConsumer
from bus_runtime.consumer_connection import TRANSITIONS, ConsumerConnection, State
from bus_runtime.errors import BrokerUnavailable, BusError, TopologyMissing
from bus_runtime.subscriber import Subscription, subscriptions
from bus_runtime.wire import encode
from tests.unit.fake_amqp import Broker, FakeChannel, FakeIo, FakeLoop

ONE_NODE = "amqp://guest:guest@127.0.0.1:5672/%2F"
TWO_NODES = "amqp://guest:guest@127.0.0.1:5681/%2F,amqp://guest:guest@127.0.0.1:5682/%2F"


class UserCreated(Event):
    user_id: str


def send_mail(_event: UserCreated) -> object:
    return isSuccess


def audit(_event: UserCreated) -> object:
    return isSuccess


SUBS = subscriptions("acme", "users", [EventSubscriber(UserCreated, [send_mail, audit])], 3)
MAIL, AUDIT = (sub.queue for sub in SUBS)


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Broker:
    fake = Broker()
    fake.queues = {MAIL, AUDIT}
    fake.answer_closes = True
    monkeypatch.setattr(connection_module, "open_connection", fake.open_connection)
    return fake


MADE: list[ConsumerConnection] = []


@pytest.fixture(autouse=True)
def no_unexpected_transition() -> Iterator[None]:
    MADE.clear()
    yield
    for connection in MADE:
        assert connection.illegal_transitions == []
        for old, new, why in connection.transitions:
            assert new in TRANSITIONS[old], why


class Events:
    """What the connection reported, in order."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.deliveries: list[tuple[str, int]] = []
        self.start_error: BusError | None = None

    def on_consuming(self, _channel: Any, reconnected: bool) -> None:
        self.seen.append("consuming again" if reconnected else "consuming")

    def on_delivery(self, sub: Subscription, method: Any, _properties: Any, _body: bytes) -> None:
        self.deliveries.append((sub.queue, method.delivery_tag))

    def on_channel_lost(self) -> None:
        self.seen.append("channel lost")

    def on_start_failed(self, error: BusError) -> None:
        self.start_error = error
        self.seen.append("start failed")

    def on_cancelled(self) -> None:
        self.seen.append("cancelled")

    def on_closed(self) -> None:
        self.seen.append("closed")


def make_connection(url: str = ONE_NODE, prefetch: int = 10) -> tuple[ConsumerConnection, Events]:
    events = Events()
    connection = ConsumerConnection(FakeIo(), RabbitMqConnector(url), SUBS, prefetch, events)  # type: ignore[arg-type]
    MADE.append(connection)
    return connection, events


def states(connection: ConsumerConnection) -> list[str]:
    """The states entered so far, in order."""
    return [new.value for _old, new, _why in connection.transitions]


def timers(connection: ConsumerConnection) -> list[float]:
    """Fire the pending timers (a reconnect's backoff); their delays."""
    loop: FakeLoop = connection.io.ioloop
    return loop.run_timers()


def consuming(broker: Broker, url: str = ONE_NODE) -> tuple[ConsumerConnection, Events, FakeChannel]:
    connection, events = make_connection(url)
    connection.connect()
    return connection, events, broker.accept()


# ---------------------------------------------------------------------- ConsumerConnection


def test_start_checks_every_queue_then_consumes_each_with_the_prefetch(broker: Broker) -> None:
    connection, events, channel = consuming(broker)
    check = broker.last.channels[0]
    assert check is not channel and check.close_requested  # the passive declares' channel
    assert channel.prefetch == 10 and sorted(q for q, _cb in channel.consumers.values()) == sorted([MAIL, AUDIT])
    channel.deliver(MAIL, 1)
    channel.deliver(AUDIT, 2)
    assert events.deliveries == [(MAIL, 1), (AUDIT, 2)]
    assert events.seen == ["consuming"] and connection.state is State.CONSUMING
    assert states(connection) == ["connecting", "checking queues", "consuming"]


def test_a_missing_queue_fails_the_start_and_closes(broker: Broker) -> None:
    broker.queues = {MAIL}
    connection, events, _channel = consuming(broker)
    assert isinstance(events.start_error, TopologyMissing) and AUDIT in str(events.start_error)
    assert events.seen == ["start failed", "channel lost", "closed"]
    assert states(connection) == ["connecting", "checking queues", "closing", "closed"]
    assert not broker.last.channels[-1].consumers  # nothing consumed


def test_during_connect_the_next_node_is_tried_before_the_start_fails(broker: Broker) -> None:
    connection, events = make_connection(TWO_NODES)
    connection.connect()
    broker.refuse()
    assert [c.port for c in broker.connections] == [5681, 5682]
    broker.accept()
    assert events.seen == ["consuming"]
    assert states(connection) == ["connecting", "checking queues", "consuming"]


def test_when_no_node_answers_the_start_fails_with_the_reason(broker: Broker) -> None:
    connection, events = make_connection(TWO_NODES)
    connection.connect()
    broker.refuse()
    broker.refuse()
    assert isinstance(events.start_error, BrokerUnavailable)
    assert str(events.start_error).startswith("cannot connect to amqp://guest:***@127.0.0.1:5681")
    assert states(connection) == ["connecting", "closed"] and timers(connection) == []
    connection.close()  # what the consumer does next: reported closed, nothing else
    assert events.seen == ["start failed", "closed"]


def test_the_connection_lost_during_the_check_fails_the_start(broker: Broker) -> None:
    broker.answer_closes = False  # the check channel's close is never answered
    connection, events = make_connection()
    connection.connect()
    broker.accept()
    assert connection.state is State.CHECKING
    broker.last.lost()
    assert isinstance(events.start_error, BrokerUnavailable)
    assert "connection closed during start" in str(events.start_error)
    assert states(connection) == ["connecting", "checking queues", "closed"]


def test_the_connection_lost_while_consuming_reconnects_to_the_next_node(broker: Broker) -> None:
    connection, events, channel = consuming(broker, TWO_NODES)
    channel.deliver(MAIL, 1)
    broker.last.lost()
    assert connection.state is State.RECONNECTING
    assert timers(connection) == [0.2]
    assert [c.port for c in broker.connections] == [5681, 5682]  # another node
    again = broker.accept()
    again.deliver(MAIL, 1)  # the broker redelivers, tags from 1 on the new channel
    assert events.seen == ["consuming", "channel lost", "consuming again"]
    assert events.deliveries == [(MAIL, 1), (MAIL, 1)]
    assert states(connection) == [
        "connecting", "checking queues", "consuming", "reconnecting", "connecting", "checking queues", "consuming",
    ]  # fmt: skip


def test_the_connection_lost_during_a_reconnect_backs_off_longer_each_time(broker: Broker) -> None:
    connection, _events, _channel = consuming(broker)
    broker.last.lost()
    assert timers(connection) == [0.2]
    broker.refuse()  # lost during connect
    assert timers(connection) == [0.4]
    broker.answer_closes = False  # the check channel's close is never answered
    broker.accept()
    assert connection.state is State.CHECKING
    broker.last.lost()  # lost during the check: after a start, a reconnect, not a failure
    assert connection.state is State.RECONNECTING and timers(connection) == [0.8]
    broker.answer_closes = True
    broker.accept()
    assert connection.state is State.CONSUMING
    broker.last.lost()
    assert timers(connection) == [0.2]  # consuming again resets the backoff


def test_a_consumer_cancelled_by_the_broker_reconnects_until_its_queue_is_back(broker: Broker) -> None:
    connection, events, channel = consuming(broker)
    broker.queues.discard(AUDIT)
    channel.cancel_from_broker(AUDIT)  # the queue was deleted
    assert connection.state is State.RECONNECTING
    timers(connection)
    broker.accept()  # its check finds the queue missing: logged, and again
    assert events.start_error is None and connection.state is State.RECONNECTING
    broker.queues.add(AUDIT)
    timers(connection)
    broker.accept()
    assert connection.state is State.CONSUMING
    assert states(connection)[2:] == [
        "consuming",
        "reconnecting", "connecting", "checking queues",  # the queue is missing
        "reconnecting", "connecting", "checking queues",  # it is back
        "consuming",
    ]  # fmt: skip


def test_a_channel_closed_by_the_broker_starts_over_on_a_fresh_connection(broker: Broker) -> None:
    connection, events, channel = consuming(broker)
    channel.closed(406, "PRECONDITION_FAILED - unknown delivery tag 7")
    assert connection.state is State.RECONNECTING and len(broker.connections) == 1
    timers(connection)
    broker.accept()
    assert events.seen == ["consuming", "channel lost", "consuming again"]
    assert states(connection)[-3:] == ["connecting", "checking queues", "consuming"]


def test_stop_cancels_the_consumers_and_drains_before_closing(broker: Broker) -> None:
    broker.hold_cancel_oks = True
    connection, events, channel = consuming(broker)
    connection.cancel_consumers()
    assert connection.state is State.DRAINING and sorted(channel.cancelled) == sorted(["ctag2.1", "ctag2.2"])
    assert "cancelled" not in events.seen and connection.cancels_pending == 2
    channel.release_cancel_oks()
    assert events.seen[-1] == "cancelled" and connection.cancels_pending == 0
    connection.close()
    assert events.seen[-2:] == ["channel lost", "closed"]
    assert states(connection)[-3:] == ["draining", "closing", "closed"]


def test_the_connection_lost_while_draining_ends_closed(broker: Broker) -> None:
    broker.hold_cancel_oks = True
    connection, events, _channel = consuming(broker)
    connection.cancel_consumers()
    broker.last.lost()
    assert connection.state is State.CLOSED and events.seen[-2:] == ["channel lost", "closed"]
    assert timers(connection) == []  # no reconnect
    connection.close()  # the consumer's close after its drain: reported again, nothing more
    assert events.seen[-1] == "closed" and states(connection)[-2:] == ["draining", "closed"]


def test_the_connection_lost_while_closing_ends_closed(broker: Broker) -> None:
    broker.hold_closes = True
    connection, events, _channel = consuming(broker)
    connection.close()
    assert connection.state is State.CLOSING and "closed" not in events.seen
    broker.last.lost()  # the close-ok never came: the socket went
    assert connection.state is State.CLOSED and events.seen[-1] == "closed"
    assert timers(connection) == []


def test_close_while_reconnecting_closes_at_once_and_the_backoff_does_nothing(broker: Broker) -> None:
    connection, events, _channel = consuming(broker)
    broker.last.lost()
    connection.cancel_consumers()  # stop(): nothing to cancel, no channel
    connection.close()
    assert events.seen[-2:] == ["cancelled", "closed"]
    assert timers(connection) == [0.2] and len(broker.connections) == 1  # the timer fired: no connection
    assert states(connection)[-4:] == ["reconnecting", "draining", "closing", "closed"]


def test_stop_while_a_reconnect_connects_closes_the_connection_once_it_opens(broker: Broker) -> None:
    connection, events, _channel = consuming(broker)
    broker.last.lost()
    timers(connection)
    assert connection.state is State.CONNECTING
    connection.cancel_consumers()
    connection.close()
    assert connection.state is State.CLOSING and events.seen[-1] == "cancelled"
    broker.last.is_open = True
    broker.on_open(broker.last)  # the attempt succeeds after all: closed at once, nothing consumed
    assert broker.last.channels == [] and connection.state is State.CLOSED
    assert events.seen[-1] == "closed"


def test_stop_during_the_check_consumes_nothing(broker: Broker) -> None:
    broker.answer_closes = False
    connection, events = make_connection()
    connection.connect()
    broker.accept()
    connection.cancel_consumers()
    broker.last.channels[0].closed(200, "Normal shutdown")  # the check ends after the stop
    assert len(broker.last.channels) == 1  # no consuming channel opened
    connection.close()
    assert connection.state is State.CLOSED and events.seen == ["cancelled", "channel lost", "closed"]
    assert states(connection) == ["connecting", "checking queues", "draining", "closing", "closed"]


# ---------------------------------------------------------------------- RabbitMqEventConsumer


class Pool:
    """The handler pool, run by the test: `run()` runs the next delivery's handler inline,
    `start()` on a thread of its own."""

    made: list[Pool] = []

    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        self.queued: list[tuple[Callable[..., None], tuple[Any, ...]]] = []
        self.threads: list[threading.Thread] = []
        Pool.made.append(self)

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        self.queued.append((fn, args))

    def run(self) -> None:
        fn, args = self.queued.pop(0)
        fn(*args)

    def start(self) -> threading.Thread:
        fn, args = self.queued.pop(0)
        thread = threading.Thread(target=fn, args=args)
        thread.start()
        self.threads.append(thread)
        return thread

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        self.queued.clear()


class Gate:
    """A handler that waits for the test: `entered` once it runs, it returns on `release`."""

    __name__ = "gated_handler"

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def __call__(self, _event: UserCreated) -> object:
        self.calls += 1
        self.entered.set()
        assert self.release.wait(5)
        return isSuccess


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.001)


@pytest.fixture
def consumer_broker(broker: Broker, monkeypatch: pytest.MonkeyPatch) -> Broker:
    """The whole consumer on the fake broker: its I/O loop inline, its pool the test's."""
    monkeypatch.setattr(consumer_module, "IoThread", FakeIo)
    monkeypatch.setattr(consumer_module, "ThreadPoolExecutor", Pool)
    Pool.made.clear()
    broker.accept_at_once = True
    return broker


def make_consumer(broker: Broker, handler: Callable[[UserCreated], object] = send_mail) -> RabbitMqEventConsumer:
    consumer = RabbitMqEventConsumer(RabbitMqConnector(ONE_NODE), "acme", "users", prefetch=10, start_timeout=1)
    consumer.consume([EventSubscriber(UserCreated, [handler])])
    broker.queues = {sub.queue for sub in consumer.subscriptions}
    MADE.append(consumer._connection)
    return consumer


def deliver(consumer: RabbitMqEventConsumer, channel: FakeChannel, *tags: int) -> None:
    """Deliveries on the consumer's only queue, as its I/O loop receives them."""
    body = encode(UserCreated(user_id="42"), "acme", "users").body
    for tag in tags:
        consumer._io.call(channel.deliver, consumer.subscriptions[0].queue, tag, body)


def test_deliveries_are_handled_acked_and_the_stop_closes(consumer_broker: Broker) -> None:
    consumer = make_consumer(consumer_broker)
    consumer.start()
    assert consumer.state is State.CONSUMING and consumer.is_running
    channel = consumer_broker.last.channels[-1]
    deliver(consumer, channel, 1, 2, 3)
    pool = Pool.made[-1]
    for _ in range(3):
        pool.run()
    assert channel.acked == {1, 2, 3} and consumer.handled_count == 3
    consumer.stop(5)
    assert consumer.state is State.CLOSED and not consumer.is_running
    assert [to.value for _old, to, _why in consumer.transitions] == [
        "connecting", "checking queues", "consuming", "draining", "closing", "closed",
    ]  # fmt: skip
    assert consumer.illegal_transitions == []


def test_stop_returns_the_unstarted_deliveries_and_lets_the_running_handler_finish(consumer_broker: Broker) -> None:
    gate = Gate()
    consumer = make_consumer(consumer_broker, gate)
    consumer_broker.hold_cancel_oks = True
    consumer.start()
    channel = consumer_broker.last.channels[-1]
    deliver(consumer, channel, 1, 2, 3)
    pool = Pool.made[-1]
    running = pool.start()  # delivery 1's handler runs; 2 and 3 are prefetched, not started
    assert gate.entered.wait(5)
    stopping = threading.Thread(target=consumer.stop, args=(5,))
    stopping.start()
    wait_until(lambda: consumer.state is State.DRAINING and channel.requeued == [2, 3])
    assert channel.acked == set() and stopping.is_alive()  # waits for the running handler
    deliver(consumer, channel, 4)  # sent before the broker saw the cancel: returned at once
    assert channel.requeued == [2, 3, 4]
    consumer._io.call(channel.release_cancel_oks)
    assert stopping.is_alive()  # cancelled, but a handler still runs
    gate.release.set()
    running.join(5)
    stopping.join(5)
    assert not stopping.is_alive() and channel.acked == {1}
    assert gate.calls == 1 and consumer.state is State.CLOSED
    assert [to.value for _old, to, _why in consumer.transitions][-3:] == ["draining", "closing", "closed"]


def test_a_result_from_a_lost_channel_is_dropped_and_the_redelivery_acked_on_the_new_one(
    consumer_broker: Broker,
) -> None:
    consumer = make_consumer(consumer_broker)
    consumer.start()
    old = consumer_broker.last.channels[-1]
    deliver(consumer, old, 1)
    consumer._io.call(consumer_broker.last.lost)
    consumer._io.call(consumer._io.ioloop.run_timers)  # the backoff is over: reconnected, consuming
    assert consumer.state is State.CONSUMING and consumer.reconnect_count == 1
    new = consumer_broker.last.channels[-1]
    pool = Pool.made[-1]
    pool.run()  # the handler of the old channel's delivery finishes now
    assert old.acks == [] and new.acks == []  # its tag meant something else on the new channel
    deliver(consumer, new, 1)  # the broker redelivers
    pool.run()
    assert new.acked == {1}
    consumer.stop(5)
    assert [to.value for _old, to, _why in consumer.transitions] == [
        "connecting", "checking queues", "consuming", "reconnecting", "connecting", "checking queues", "consuming",
        "draining", "closing", "closed",
    ]  # fmt: skip


def test_a_start_that_finds_a_queue_missing_raises_and_ends_closed(consumer_broker: Broker) -> None:
    consumer = make_consumer(consumer_broker)
    consumer_broker.queues = set()
    with pytest.raises(TopologyMissing):
        consumer.start()
    assert consumer.state is State.CLOSED and not consumer.is_running
    consumer.stop(1)  # a failed start leaves nothing to stop
    assert consumer.state is State.CLOSED


def test_the_asyncio_consumer_is_on_the_same_states(consumer_broker: Broker) -> None:
    consumer = make_consumer(consumer_broker)
    aio = AsyncRabbitMqEventConsumer.wrapping(consumer)

    async def main() -> list[State]:
        seen = [aio.state]
        await aio.start()
        seen.append(aio.state)
        await aio.stop(5)
        seen.append(aio.state)
        return seen

    assert asyncio.run(main()) == [State.IDLE, State.CONSUMING, State.CLOSED]
    assert aio.transitions == consumer.transitions and aio.illegal_transitions == []
