"""Faults the runtime must survive without losing a message: broker nacks mixed with a timeout
in one publish, a memory alarm while a consumer retries, a connection closed by the broker.

The publish test runs in the test's own vhost on the shared broker (a full queue nacking
publishes is ordinary broker behaviour); the alarm and forced-close tests run on a node this
session starts itself (`private_broker`), never on the shared one.
"""

from __future__ import annotations

import pika

from bus_runtime.bus import RabbitMqEventBus
from bus_runtime.errors import PublishError
from bus_runtime.publisher import NACKED
from tests.integration.runtime_support import ORG, SERVICE, UserCreated, connector

EXCHANGE = f"{ORG}.{SERVICE}"
CAPACITY = 2500


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


def test_publish_error_lists_every_message_not_confirmed_with_its_reason(amqp_url: str) -> None:
    """One publish of 10,000 with a 0.3 s timeout into a queue that takes 2,500 and nacks the rest:
    whatever mix of nacks and timeouts the broker produces, every message is either confirmed
    (and in the queue) or in the error with its reason, never both; re-publishing the error's
    messages until none is left loses nothing."""
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
