"""The confirmed publisher driven without a broker: a fake I/O loop, fake connections and
channels, and synthetic pika frames (acks, nacks, returns, closes) in the order a broker sends
them. Each test states what the caller ends up with."""

from __future__ import annotations

from typing import Any

import pika
import pytest

from bus_runtime import publisher as publisher_module
from bus_runtime.connector import RabbitMqConnector
from bus_runtime.publisher import CLOSED, NACKED, ConfirmedPublisher, Outgoing, State
from tests.unit.fake_amqp import Broker, FakeIo


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Broker:
    fake = Broker()
    monkeypatch.setattr(publisher_module, "open_connection", fake.open_connection)
    return fake


MADE: list[ConfirmedPublisher] = []


@pytest.fixture(autouse=True)
def no_unexpected_transition() -> Any:
    """Whatever a test drives, every state change is one `TRANSITIONS` allows."""
    MADE.clear()
    yield
    for publisher in MADE:
        assert publisher.illegal_transitions == []


def make_publisher(**options: Any) -> ConfirmedPublisher:
    publisher = ConfirmedPublisher(RabbitMqConnector("amqp://guest:guest@127.0.0.1:5672/%2F"), **options)
    publisher._io = FakeIo()  # type: ignore[assignment]
    MADE.append(publisher)
    return publisher


def states(publisher: ConfirmedPublisher) -> list[str]:
    """The states entered so far, in order."""
    return [to.value for _from, to, _why in publisher.transitions]


def items(*ids: str) -> list[Outgoing]:
    return [Outgoing("x", "k", b"{}", pika.BasicProperties(message_id=i), f"event {i}") for i in ids]


class Outcome:
    def __init__(self) -> None:
        self.failures: dict[int, str] | None = None
        self.unroutable: list[int] | None = None

    def __call__(self, failures: dict[int, str], unroutable: list[int]) -> None:
        self.failures, self.unroutable = dict(failures), list(unroutable)


def submitted(publisher: ConfirmedPublisher, *ids: str) -> Outcome:
    outcome = Outcome()
    publisher.submit(items(*ids), outcome)
    return outcome


def test_single_and_multiple_acks_confirm_every_message(broker: Broker) -> None:
    publisher = make_publisher()
    outcome = submitted(publisher, "a", "b", "c")
    channel = broker.accept()
    assert channel.published == ["a", "b", "c"]
    channel.ack(1)
    assert outcome.failures is None
    channel.ack(3, multiple=True)
    assert outcome.failures == {} and outcome.unroutable == []


def test_a_nack_outside_a_failover_is_final(broker: Broker) -> None:
    publisher = make_publisher()
    outcome = submitted(publisher, "a", "b")
    channel = broker.accept()
    channel.nack(1)
    channel.ack(2)
    assert outcome.failures == {0: NACKED}
    assert not channel.close_requested


def test_a_return_before_its_ack_marks_the_message_unroutable(broker: Broker) -> None:
    publisher = make_publisher()
    outcome = submitted(publisher, "a", "b")
    channel = broker.accept()
    channel.returned("b")
    channel.ack(2, multiple=True)
    assert outcome.failures == {} and outcome.unroutable == [1]
    assert publisher.unroutable_count == 1


def test_a_channel_closed_by_the_broker_fails_what_was_in_flight_and_goes_on(broker: Broker) -> None:
    publisher = make_publisher()
    first = submitted(publisher, "a")
    channel = broker.accept()
    channel.closed()
    assert first.failures is not None and first.failures[0].startswith("channel closed by the broker: NOT_FOUND")
    assert publisher.state is State.REPLACING_CHANNEL or publisher.state is State.READY
    second = submitted(publisher, "b")
    replacement = broker.last.channels[-1]
    assert replacement is not channel and replacement.published == ["b"]
    replacement.ack(1)
    assert second.failures == {}


def test_the_connection_lost_mid_flight_sends_the_unconfirmed_again_on_the_next_node(broker: Broker) -> None:
    publisher = make_publisher()
    outcome = submitted(publisher, "a", "b", "c")
    channel = broker.accept()
    channel.ack(1)
    broker.last.lost()
    assert len(broker.connections) == 1 and broker.ioloop_delays(publisher) == [0.1]
    assert len(broker.connections) == 2  # a new connection (the next node in the URL list)
    new_channel = broker.accept()
    assert new_channel.published == ["b", "c"]  # only the unconfirmed ones, tags from 1 again
    new_channel.ack(2, multiple=True)
    assert outcome.failures == {}
    assert publisher.connection_count == 2
    assert states(publisher) == ["connecting", "ready", "reconnecting", "connecting", "ready"]


def test_after_a_failover_a_nacking_channel_is_replaced_and_the_messages_sent_again(broker: Broker) -> None:
    """The failover defect: after a reconnect, the broker's new channel may keep a dead quorum
    leader and nack everything. The publisher replaces the channel instead of failing."""
    publisher = make_publisher()
    outcome = submitted(publisher, "a", "b", "c")
    broker.accept()
    broker.last.lost()
    broker.ioloop_delays(publisher)
    stale = broker.accept()
    assert stale.published == ["a", "b", "c"]
    stale.nack(2, multiple=True)  # the dead leader's answer
    assert stale.close_requested and outcome.failures is None
    stale.ack(3)  # a confirm still arriving on the closing channel counts
    stale.closed(200, "Normal shutdown")
    assert broker.ioloop_delays(publisher) == [0.1]
    fresh = broker.last.channels[-1]
    assert fresh is not stale and fresh.published == ["a", "b"]
    fresh.nack(1)  # still stale (the new leader not recorded yet): again, with a longer pause
    fresh.closed(200, "Normal shutdown")
    assert broker.ioloop_delays(publisher) == [0.2]
    third = broker.last.channels[-1]
    assert third.published == ["a", "b"]
    third.ack(2, multiple=True)
    assert outcome.failures == {}
    assert states(publisher) == [
        "connecting", "ready", "reconnecting", "connecting", "ready",
        "replacing channel", "ready", "replacing channel", "ready",
    ]  # fmt: skip


def test_the_connection_lost_mid_pump_requeues_the_message_being_sent(broker: Broker) -> None:
    publisher = make_publisher()
    outcome = submitted(publisher, "a")
    channel = broker.accept()
    channel.is_open = False  # the socket is gone; pika raises on basic_publish
    submitted_later = submitted(publisher, "b")
    broker.last.lost()
    broker.ioloop_delays(publisher)
    again = broker.accept()
    assert again.published == ["a", "b"]
    again.ack(2, multiple=True)
    assert outcome.failures == {} and submitted_later.failures == {}


def test_the_connection_lost_while_connecting_retries_then_fails_with_the_reason(broker: Broker) -> None:
    publisher = make_publisher(reconnect_attempts=2)
    outcome = submitted(publisher, "a")
    broker.refuse()
    assert broker.ioloop_delays(publisher) == [0.1]
    broker.refuse()
    assert outcome.failures is not None
    assert outcome.failures[0].startswith("cannot connect to amqp://guest:***@127.0.0.1:5672/%2F")


def test_close_while_reconnecting_fails_the_waiting_messages_as_closed(broker: Broker) -> None:
    publisher = make_publisher()
    outcome = submitted(publisher, "a")
    broker.accept()
    broker.last.lost()
    publisher.close()
    assert outcome.failures == {0: CLOSED}
    broker.ioloop_delays(publisher)  # the pending reconnect does nothing once closed
    assert len(broker.connections) == 1
    assert states(publisher)[-3:] == ["reconnecting", "closing", "closed"]


def test_close_while_connecting_closes_the_connection_once_it_opens(broker: Broker) -> None:
    publisher = make_publisher()
    outcome = submitted(publisher, "a")
    assert publisher.state is State.CONNECTING
    publisher.close()
    assert outcome.failures == {0: CLOSED} and publisher.state is State.CLOSING
    connection = broker.last
    connection.is_open = True
    broker.on_open(connection)  # the attempt succeeds after all: it is closed at once
    assert connection.channels == [] and publisher.state is State.CLOSED


def test_the_connection_lost_while_its_channel_opens_reconnects(broker: Broker) -> None:
    publisher = make_publisher()
    outcome = submitted(publisher, "a")
    broker.last.lost()  # before the channel was ready
    assert publisher.state is State.RECONNECTING
    broker.ioloop_delays(publisher)
    broker.accept().ack(1)
    assert outcome.failures == {} and publisher.state is State.READY


def test_a_message_the_broker_refuses_by_closing_the_connection_fails_alone(broker: Broker) -> None:
    """The broker closes the connection over one message (501 FRAME_ERROR) without saying which:
    what was in flight is sent again one at a time; the one refused alone fails alone, with the
    broker's reason, and is not sent again; the others are confirmed."""
    publisher = make_publisher()
    mine = submitted(publisher, "a", "poison", "c")
    theirs = submitted(publisher, "d")
    broker.accept()
    closed = pika.exceptions.ConnectionClosedByBroker(501, "FRAME_ERROR - type 3, all octets = <<>>")
    broker.last.is_open = False
    broker.on_close(broker.last, closed)
    broker.ioloop_delays(publisher)
    first = broker.accept()
    assert first.published == ["a"]  # one at a time
    first.ack(1)
    assert first.published == ["a", "poison"]
    broker.last.is_open = False
    broker.on_close(broker.last, closed)
    broker.ioloop_delays(publisher)
    second = broker.accept()
    assert second.published == ["c"]  # the refused one is not sent again
    second.ack(1)
    assert second.published == ["c", "d"]
    second.ack(2)
    assert mine.failures == {
        1: "refused by the broker: ConnectionClosedByBroker: 501 FRAME_ERROR - type 3, all octets = <<>>"
    }
    assert theirs.failures == {}


def test_a_body_the_broker_refuses_by_closing_the_channel_fails_alone(broker: Broker) -> None:
    publisher = make_publisher()
    outcome = submitted(publisher, "a", "huge")
    channel = broker.accept()
    channel.closed(406, "PRECONDITION_FAILED - message size 20000000 is larger than configured max size 16777216")
    retry = broker.last.channels[-1]
    assert retry.published == ["a"]
    retry.ack(1)
    assert retry.published == ["a", "huge"]
    retry.closed(406, "PRECONDITION_FAILED - message size 20000000 is larger than configured max size 16777216")
    assert outcome.failures is not None and outcome.failures[1].startswith(
        "refused by the broker: ChannelClosedByBroker: 406"
    )
    assert list(outcome.failures) == [1]
