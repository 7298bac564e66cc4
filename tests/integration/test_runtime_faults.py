"""Faults the runtime must survive without losing a message: broker nacks mixed with a timeout
in one publish, a memory alarm while a consumer retries, a connection closed by the broker.

Each runs in a vhost of its own on a node this session starts itself (`private_broker`),
never on the shared broker.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import pika
import pytest
from meiga import isFailure, isSuccess

from bus_runtime.bus import RabbitMqEventBus
from bus_runtime.consumer import RabbitMqEventConsumer
from bus_runtime.errors import PublishError
from bus_runtime.publisher import NACKED
from bus_runtime.subscriber import EventSubscriber
from tests.integration.private_broker import PrivateBroker
from tests.integration.runtime_support import ORG, SERVICE, UserCreated, connector, force_close, subscribers_spec
from tests.integration.support import import_topology, wait_for

EXCHANGE = f"{ORG}.{SERVICE}"
QUEUE = f"{ORG}.{SERVICE}.1.event.user.created.send_mail_handler"
CAPACITY = 2500


@pytest.fixture
def fault_vhost(private_broker: PrivateBroker) -> Iterator[str]:
    """A vhost of the test's own on the private broker."""
    name = private_broker.new_vhost()
    try:
        yield name
    finally:
        private_broker.delete_vhost(name)


def declare_bounded_queue(amqp_url: str, queue: str) -> None:
    """The service's exchange and one queue bound to all of it that holds at most CAPACITY
    messages and nacks publishes beyond that (`x-overflow: reject-publish`)."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        channel.exchange_declare(EXCHANGE, "topic", durable=True)
        arguments = {"x-max-length": CAPACITY, "x-overflow": "reject-publish"}
        channel.queue_declare(queue, durable=True, arguments=arguments)
        channel.queue_bind(queue, EXCHANGE, "#")
    finally:
        connection.close()


def drain(amqp_url: str, queue: str) -> list[str]:
    """Take every message out of `queue`; their message ids."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        count = int(channel.queue_declare(queue, passive=True).method.message_count)
        ids: list[str] = []
        if count:
            for _method, properties, _body in channel.consume(queue, auto_ack=True):
                ids.append(str(properties.message_id))
                if len(ids) == count:
                    break
            channel.cancel()
        return ids
    finally:
        connection.close()


def test_publish_error_lists_every_message_not_confirmed_with_its_reason(
    private_broker: PrivateBroker,
    fault_vhost: str,
) -> None:
    """One publish of 10,000 with a 0.3 s timeout into a queue that takes 2,500 and nacks the rest:
    whatever mix of nacks and timeouts the broker produces, every message is either confirmed
    (and in the queue) or in the error with its reason, never both; re-publishing the error's
    messages until none is left loses nothing."""
    amqp_url = private_broker.amqp_url(fault_vhost)
    queue = "bounded"
    declare_bounded_queue(amqp_url, queue)
    events = [UserCreated(user_id=str(i)) for i in range(4 * CAPACITY)]
    by_id = {event.id: event for event in events}
    received: list[str] = []
    reasons_seen: set[str] = set()
    maybe_sent: set[str] = set()
    pending = events
    with RabbitMqEventBus(connector(amqp_url), ORG, SERVICE) as bus:
        for round_number in range(1, 12):
            try:
                bus.publish(pending, timeout=0.3 if round_number == 1 else 120.0)
                failed: list[tuple[str, str]] = []
                messages: list[UserCreated] = []
            except PublishError as error:
                failed = error.failures
                messages = list(error.messages)
                assert len(messages) == len(failed) == len(set(error.unconfirmed))
            failed_ids = {label.split(" ", 1)[1] for label, _ in failed}
            assert {m.id for m in messages} == failed_ids
            assert failed_ids <= {event.id for event in pending}
            stored = drain(amqp_url, queue)
            nacked = {label.split(" ", 1)[1] for label, reason in failed if reason == NACKED}
            # a copy sent before an earlier round's deadline may reach the queue late (at-least-once)
            assert not (nacked - maybe_sent) & set(stored), f"round {round_number}: a nacked message is in the queue"
            maybe_sent |= {label.split(" ", 1)[1] for label, reason in failed if "(sent" in reason}
            confirmed = {event.id for event in pending} - failed_ids
            assert confirmed <= set(stored), "a message reported confirmed is not in the queue"
            received.extend(stored)
            reasons_seen.update(reason for _, reason in failed)
            pending = messages
            if not pending:
                break
    assert not pending, f"still not confirmed after {round_number} rounds"
    assert set(received) >= set(by_id), f"{len(set(by_id) - set(received))} message(s) lost"
    assert NACKED in reasons_seen  # the queue's limit was reached: the broker nacked some


@contextlib.contextmanager
def memory_alarm(broker: PrivateBroker) -> Iterator[None]:
    """Set the node's memory watermark so low that the alarm goes off; restore it after."""
    broker.ctl("set_vm_memory_high_watermark", "0.0000001")
    try:
        wait_for(broker.memory_alarm, "the memory alarm", timeout=60)
        yield
    finally:
        broker.ctl("set_vm_memory_high_watermark", "0.4")
        wait_for(lambda: not broker.memory_alarm(), "the memory alarm to clear", timeout=60)


def test_a_consumer_keeps_acking_during_a_memory_alarm_while_its_retry_copy_waits(
    private_broker: PrivateBroker,
    fault_vhost: str,
) -> None:
    """The first message fails, so its retry copy is published while the alarm blocks
    publishers; the 40 behind it succeed only after that copy was handed over. Their acks must
    reach the broker while the alarm is still on (the copy travels on a connection of its own,
    the consuming connection never publishes), or the prefetch window of 20 never frees; once
    the alarm clears the copy is confirmed, the original acked and the retry succeeds."""
    broker = private_broker
    amqp_url = broker.amqp_url(fault_vhost)
    calls: list[str] = []
    consumer: RabbitMqEventConsumer | None = None

    def send_mail_handler(event: UserCreated) -> Any:
        calls.append(event.user_id)
        if event.user_id == "fail":
            return isFailure if calls.count("fail") == 1 else isSuccess
        # the others wait until the failed one's retry copy was handed over (the alarm is on)
        wait_for(lambda: consumer is not None and consumer.retried_count >= 1, "the retry copy", timeout=60)
        return isSuccess

    subscribers = [EventSubscriber(UserCreated, [send_mail_handler])]
    import_topology(broker.management_url, fault_vhost, subscribers_spec(subscribers, retry_ttl=100))
    events = [UserCreated(user_id="fail")] + [UserCreated(user_id=str(i)) for i in range(40)]
    with RabbitMqEventBus(connector(amqp_url), ORG, SERVICE) as bus:
        bus.publish(events)
    prefetch = 20  # fewer than the 41 messages: all get delivered only if acks reach the broker
    consumer = RabbitMqEventConsumer(connector(amqp_url), ORG, SERVICE, workers=4, prefetch=prefetch)
    consumer.consume(subscribers)

    def acks_flow() -> bool:
        ready, unacked = broker.queue_counts(fault_vhost, QUEUE)
        return ready == 0 and 0 < unacked < prefetch

    try:
        with memory_alarm(broker):
            consumer.start()
            # broker side: every message delivered, so acks freed the prefetch window; the failed
            # original (and successes acked behind it in groups, see settlement) still in hand
            wait_for(acks_flow, "acks during the alarm", timeout=60)
            assert broker.memory_alarm()
            assert consumer.retried_count == 1 and calls.count("fail") == 1
        wait_for(lambda: calls.count("fail") == 2, "the retry after the alarm", timeout=60)
        wait_for(lambda: broker.queue_counts(fault_vhost, QUEUE) == (0, 0), "nothing left in hand", timeout=30)
    finally:
        consumer.stop()
    assert sorted(set(calls)) == sorted({e.user_id for e in events})


def test_the_reconnect_log_names_why_the_consumer_connection_was_lost(
    private_broker: PrivateBroker,
    fault_vhost: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A connection closed by the broker is logged with its cause (class, code and text), and
    the consumer reconnects and goes on."""
    broker = private_broker
    amqp_url = broker.amqp_url(fault_vhost)
    seen: list[str] = []

    def send_mail_handler(event: UserCreated) -> Any:
        seen.append(event.user_id)
        return isSuccess

    subscribers = [EventSubscriber(UserCreated, [send_mail_handler])]
    import_topology(broker.management_url, fault_vhost, subscribers_spec(subscribers))
    consumer = RabbitMqEventConsumer(connector(amqp_url), ORG, SERVICE)
    consumer.consume(subscribers)
    with caplog.at_level(logging.WARNING, logger="bus_runtime.consumer"), consumer:
        assert force_close(broker.management_url, fault_vhost, "rabbitform-consumer") == 1
        wait_for(lambda: consumer.reconnect_count == 1, "the consumer reconnected", timeout=60)
        with RabbitMqEventBus(connector(amqp_url), ORG, SERVICE) as bus:
            bus.publish(UserCreated(user_id="after"))
        wait_for(lambda: seen == ["after"], "the event published after the reconnect", timeout=30)
    lost = [r.getMessage() for r in caplog.records if r.getMessage().startswith("consumer connection lost")]
    assert lost, "no reconnect log"
    assert lost[0].startswith(
        "consumer connection lost (ConnectionClosedByBroker: 320 CONNECTION_FORCED - forced close by the test)"
    ), lost[0]
