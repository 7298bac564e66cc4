"""Heartbeats, broker-side forced closes: the runtime survives and loses nothing."""

from __future__ import annotations

import threading
from urllib.parse import quote

import pytest
import requests

from bus_runtime.bus import RabbitMqEventBus
from bus_runtime.consumer import RabbitMqEventConsumer
from bus_runtime.subscriber import EventSubscriber
from tests.integration.runtime_support import (
    ORG,
    SERVICE,
    Recorder,
    UserCreated,
    assert_all_empty,
    connector,
    force_close,
    subscribers_spec,
)
from tests.integration.support import AUTH, depth, import_topology, wait_for

QUEUE = f"{ORG}.{SERVICE}.1.event.user.created.send_mail_handler"


def test_a_handler_longer_than_the_heartbeat_timeout_does_not_kill_the_connection(
    management_url: str, vhost: str, amqp_url: str
) -> None:
    slow = Recorder("send_mail_handler", sleep=3.5)  # heartbeat 1 s: the broker gives up after ~2 s
    subscribers = [EventSubscriber(UserCreated, [slow.handler])]
    import_topology(management_url, vhost, subscribers_spec(subscribers))
    consumer = RabbitMqEventConsumer(connector(amqp_url, heartbeat=1), ORG, SERVICE, workers=2)
    consumer.consume(subscribers)
    with consumer, RabbitMqEventBus(connector(amqp_url), ORG, SERVICE) as bus:
        bus.publish([UserCreated(user_id="1"), UserCreated(user_id="2")])
        wait_for(lambda: consumer.handled_count == 2, timeout=15, what="both slow calls acked")
        assert consumer.reconnect_count == 0
    assert slow.count == 2  # acked once each: no redelivery after a lost connection
    assert_all_empty(management_url, amqp_url, vhost)


def test_a_forced_close_of_the_consumer_connection_loses_no_message(
    management_url: str, vhost: str, amqp_url: str
) -> None:
    mail = Recorder("send_mail_handler", sleep=0.02)
    subscribers = [EventSubscriber(UserCreated, [mail.handler])]
    import_topology(management_url, vhost, subscribers_spec(subscribers))
    consumer = RabbitMqEventConsumer(connector(amqp_url), ORG, SERVICE, workers=2, prefetch=20)
    consumer.consume(subscribers)
    events = [UserCreated(user_id=str(i)) for i in range(120)]
    with consumer, RabbitMqEventBus(connector(amqp_url), ORG, SERVICE) as bus:
        bus.publish(events)
        wait_for(lambda: mail.count >= 10, what="consumption under way")
        assert force_close(management_url, vhost, "rabbitform-consumer") >= 1
        wait_for(lambda: consumer.reconnect_count >= 1, timeout=20, what="the consumer reconnected")
        wait_for(
            lambda: {e.user_id for e in mail.events} == {e.user_id for e in events},
            timeout=30,
            what="every event handled",
        )
    assert mail.count >= len(events)  # at-least-once: a message in hand at the close may come twice
    assert_all_empty(management_url, amqp_url, vhost)


def test_a_forced_close_of_the_publisher_connection_republishes_the_unconfirmed(
    management_url: str, vhost: str, amqp_url: str
) -> None:
    import_topology(
        management_url, vhost, subscribers_spec([EventSubscriber(UserCreated, [Recorder("send_mail_handler").handler])])
    )
    with RabbitMqEventBus(connector(amqp_url), ORG, SERVICE) as bus:
        bus.publish(UserCreated(user_id="first"))
        count = 20_000
        errors: list[BaseException] = []

        def publish_batch() -> None:
            try:
                bus.publish([UserCreated(user_id=str(i)) for i in range(count)])
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        publisher = threading.Thread(target=publish_batch)
        publisher.start()
        force_close(management_url, vhost, "rabbitform-RabbitMqEventBus")
        publisher.join(60)
        assert errors == []
        bus.publish(UserCreated(user_id="last"))
        assert bus.connection_count == 2  # the close hit the batch or the next publish: it reconnected
    assert depth(amqp_url, QUEUE) >= count + 2  # confirmed: all there (a resent one may be twice)


def test_a_deleted_queue_is_reported_and_consumption_resumes_once_it_is_back(
    management_url: str, vhost: str, amqp_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    mail = Recorder("send_mail_handler")
    subscribers = [EventSubscriber(UserCreated, [mail.handler])]
    import_topology(management_url, vhost, subscribers_spec(subscribers))
    consumer = RabbitMqEventConsumer(connector(amqp_url), ORG, SERVICE)
    consumer.consume(subscribers)
    with consumer:
        requests.delete(
            f"{management_url}/api/queues/{quote(vhost, safe='')}/{quote(QUEUE, safe='')}", auth=AUTH, timeout=10
        ).raise_for_status()
        wait_for(lambda: "missing" in caplog.text and QUEUE in caplog.text, what="the missing queue reported")
        import_topology(management_url, vhost, subscribers_spec(subscribers))  # `rabbitform apply` again
        with RabbitMqEventBus(connector(amqp_url), ORG, SERVICE) as bus:
            bus.publish(UserCreated(user_id="back"))
        wait_for(lambda: mail.count == 1, timeout=20, what="consumption resumed")
    # The broker tells a consumer its queue is gone either by cancelling it or, when the queue
    # vanishes mid-check, by closing the channel with 404: either way it reconnects and waits.
    assert "cancelled consuming" in caplog.text or "NOT_FOUND" in caplog.text
    assert consumer.reconnect_count >= 1
