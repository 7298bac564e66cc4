"""Confirmed publishing on the real broker: properties, batches, threads, unroutable, failures."""

from __future__ import annotations

import json
import threading
import time

import pytest

from bus_runtime.bus import RabbitMqCommandBus, RabbitMqEventBus
from bus_runtime.connector import RabbitMqConnector
from bus_runtime.errors import PublishError, UnroutableError
from bus_runtime.subscriber import EventSubscriber
from tests.integration.runtime_support import (
    ORG,
    SERVICE,
    Recorder,
    SendWelcome,
    UserCreated,
    UserDeleted,
    connector,
    subscribers_spec,
)
from tests.integration.support import depth, get_messages, import_topology

QUEUE = f"{ORG}.{SERVICE}.1.event.user.created.send_mail_handler"


@pytest.fixture
def topology(management_url: str, vhost: str) -> None:
    import_topology(
        management_url, vhost, subscribers_spec([EventSubscriber(UserCreated, [Recorder("send_mail_handler").handler])])
    )


@pytest.mark.usefixtures("topology")
def test_published_message_carries_the_wire_properties(management_url: str, vhost: str, amqp_url: str) -> None:
    event = UserCreated(user_id="42")
    with RabbitMqEventBus(connector(amqp_url), ORG, SERVICE) as bus:
        assert bus.publish(event, headers={"traceparent": "00-abc-def-01"}) == []
    [message] = get_messages(management_url, vhost, QUEUE)
    properties = message["properties"]
    assert properties["message_id"] == event.id
    assert properties["type"] == "user.created"
    assert properties["content_type"] == "application/json"
    assert properties["delivery_mode"] == 2
    assert properties["app_id"] == SERVICE
    assert properties["timestamp"] == int(event.occurred_on.timestamp())
    assert properties["headers"] == {"traceparent": "00-abc-def-01"}
    assert message["routing_key"] == f"{ORG}.{SERVICE}.1.event.user.created"
    assert json.loads(message["payload"])["data"]["id"] == event.id


@pytest.mark.usefixtures("topology")
def test_a_batch_is_confirmed_and_several_threads_can_publish(amqp_url: str) -> None:
    with RabbitMqEventBus(connector(amqp_url), ORG, SERVICE) as bus:
        bus.publish([UserCreated(user_id=str(i)) for i in range(2000)])
        errors: list[BaseException] = []

        def publish_some(offset: int) -> None:
            try:
                for i in range(50):
                    bus.publish([UserCreated(user_id=f"{offset}-{i}"), UserCreated(user_id=f"{offset}-{i}b")])
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=publish_some, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
    # publish returned: every message was confirmed, so every one is in the queue now
    assert depth(amqp_url, QUEUE) == 2000 + 4 * 50 * 2


@pytest.mark.usefixtures("topology")
def test_unroutable_events_are_reported_and_counted(amqp_url: str) -> None:
    nobody_listens = UserDeleted(user_id="1")
    with RabbitMqEventBus(connector(amqp_url), ORG, SERVICE) as bus:
        returned = bus.publish([UserCreated(user_id="1"), nobody_listens])
        assert returned == [nobody_listens]
        assert bus.unroutable_count == 1
    with RabbitMqEventBus(connector(amqp_url), ORG, SERVICE, on_unroutable="raise") as strict:
        with pytest.raises(UnroutableError) as raised:
            strict.publish(nobody_listens)
        assert nobody_listens.id in str(raised.value)
        assert strict.unroutable_count == 1
    assert depth(amqp_url, QUEUE) == 1


def test_commands_use_the_command_routing_key(management_url: str, vhost: str, amqp_url: str) -> None:
    import_topology(
        management_url, vhost, subscribers_spec([EventSubscriber(SendWelcome, [Recorder("welcome_handler").handler])])
    )
    with RabbitMqCommandBus(connector(amqp_url), ORG, SERVICE) as bus:
        assert bus.publish(SendWelcome(user_id="1")) == []
        with pytest.raises(TypeError, match="Commands"):
            bus.publish(UserCreated(user_id="1"))
    [message] = get_messages(management_url, vhost, f"{ORG}.{SERVICE}.1.command.send.welcome.welcome_handler")
    assert message["routing_key"] == f"{ORG}.{SERVICE}.1.command.send.welcome"
    assert json.loads(message["payload"])["data"]["type_message"] == "command"


def test_a_missing_exchange_raises_naming_the_events(vhost: str, amqp_url: str) -> None:
    events = [UserCreated(user_id="1"), UserCreated(user_id="2")]
    with RabbitMqEventBus(connector(amqp_url), ORG, SERVICE) as bus:
        with pytest.raises(PublishError) as raised:
            bus.publish(events)
        text = str(raised.value)
        assert "NOT_FOUND" in text and "alice.petisco" in text
        assert all(event.id in text for event in events)


def test_an_unreachable_broker_raises_naming_the_events() -> None:
    event = UserCreated(user_id="1")
    started = time.monotonic()
    unreachable = RabbitMqConnector("amqp://guest:guest@127.0.0.1:1/%2F")
    with RabbitMqEventBus(unreachable, ORG, SERVICE) as bus, pytest.raises(PublishError) as raised:
        bus.publish(event)
    assert "cannot connect" in str(raised.value) and event.id in str(raised.value)
    assert time.monotonic() - started < 20


@pytest.mark.usefixtures("topology")
def test_a_timeout_raises_naming_the_unconfirmed_and_the_bus_stays_usable(amqp_url: str) -> None:
    with RabbitMqEventBus(connector(amqp_url), ORG, SERVICE) as bus:
        batch = [UserCreated(user_id=str(i)) for i in range(20_000)]
        with pytest.raises(PublishError, match=r"no broker confirm within 0\.001s") as raised:
            bus.publish(batch, timeout=0.001)
        assert 0 < len(raised.value.unconfirmed) <= len(batch)
        assert raised.value.unconfirmed[0].startswith("user.created ")
        assert bus.publish(UserCreated(user_id="after")) == []
