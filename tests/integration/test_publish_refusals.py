"""Failures that stay small, on the real broker: what it would refuse is refused at `publish`
before anything is sent, and a message it refuses by closing the connection fails alone while
another caller's publish on the same bus goes through."""

from __future__ import annotations

import threading
import time

import pika
import pytest

from bus_runtime.bus import RabbitMqEventBus, outgoing
from bus_runtime.errors import PublishError
from bus_runtime.limits import MessageRefused
from bus_runtime.publisher import REFUSED
from bus_runtime.subscriber import EventSubscriber
from tests.integration.runtime_support import ORG, SERVICE, Recorder, UserCreated, connector, subscribers_spec
from tests.integration.support import depth, import_topology

QUEUE = f"{ORG}.{SERVICE}.1.event.user.created.send_mail_handler"


@pytest.fixture
def topology(management_url: str, vhost: str) -> None:
    import_topology(
        management_url, vhost, subscribers_spec([EventSubscriber(UserCreated, [Recorder("send_mail_handler").handler])])
    )


@pytest.mark.usefixtures("topology")
def test_oversized_or_unencodable_headers_are_refused_and_the_bus_goes_on(
    management_url: str, vhost: str, amqp_url: str
) -> None:
    with RabbitMqEventBus(connector(amqp_url), ORG, SERVICE) as bus:
        bus.publish(UserCreated(user_id="0"))  # connected: frame_max is the negotiated one
        started = time.monotonic()
        with pytest.raises(MessageRefused, match="frame_max"):
            bus.publish(UserCreated(user_id="1"), headers={"h": "y" * 200_000})
        with pytest.raises(MessageRefused, match="header h: a float"):
            bus.publish(UserCreated(user_id="2"), headers={"h": 1.5})
        assert time.monotonic() - started < 1.0  # at once, not after the publish timeout
        bus.publish([UserCreated(user_id=str(i)) for i in range(100)])
        assert bus.connection_count == 1
    assert depth(amqp_url, QUEUE) == 101


@pytest.mark.usefixtures("topology")
def test_a_message_the_broker_refuses_by_closing_the_connection_fails_alone(
    management_url: str, vhost: str, amqp_url: str
) -> None:
    """Sent past the checks (straight to the publisher), a header over frame_max makes the broker
    close the connection (501 FRAME_ERROR): that message fails alone, is not sent in a loop, and
    100 events published at the same time from another thread are confirmed."""
    with RabbitMqEventBus(connector(amqp_url), ORG, SERVICE, timeout=20) as bus:
        poison = outgoing(UserCreated(user_id="poison"), ORG, SERVICE, {"h": "y" * 200_000})
        others: list[BaseException] = []
        batch = [UserCreated(user_id=str(i)) for i in range(100)]

        def publish_others() -> None:
            try:
                bus.publish(batch)
            except BaseException as exc:  # reported below
                others.append(exc)

        warm_up = UserCreated(user_id="warm-up")
        bus.publish(warm_up)
        thread = threading.Thread(target=publish_others)
        thread.start()
        with pytest.raises(PublishError) as refused:
            bus._publisher.publish([poison])
        thread.join(30)
        assert not others, others
        assert refused.value.failures[0][1].startswith(f"{REFUSED}: ConnectionClosedByBroker: 501")
        assert bus.connection_count <= 3  # one close to find it, one to isolate it: no resend loop
    # what was in flight at the first close may be queued twice (at-least-once), the poison never
    assert set(message_ids(amqp_url, QUEUE)) == {warm_up.id, *(event.id for event in batch)}


def message_ids(amqp_url: str, queue: str) -> list[str]:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        found = []
        while (got := channel.basic_get(queue, auto_ack=True))[0] is not None:
            found.append(str(got[1].message_id))
        return found
    finally:
        connection.close()


def test_pika_still_closes_the_connection_over_such_a_header(amqp_url: str) -> None:
    """The premise of the test above, with pika alone."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    with pytest.raises(pika.exceptions.AMQPError):
        channel.basic_publish("", "nowhere", b"", pika.BasicProperties(headers={"h": "y" * 200_000}))
        connection.process_data_events(time_limit=5)
        channel.basic_publish("", "nowhere", b"")
        connection.process_data_events(time_limit=5)
    if connection.is_open:
        connection.close()
