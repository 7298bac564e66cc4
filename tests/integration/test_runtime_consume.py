"""The consumer on the real broker: round trip, retries, dead letters, poison, store, stop."""

from __future__ import annotations

import itertools
import json

import pytest

from bus_runtime import retry
from bus_runtime.bus import RabbitMqEventBus
from bus_runtime.consumer import RabbitMqEventConsumer
from bus_runtime.errors import BusError, TopologyMissing
from bus_runtime.message import InfoId
from bus_runtime.subscriber import EventSubscriber
from bus_runtime.wire import encode
from tests.integration.runtime_support import (
    ORG,
    SERVICE,
    Recorder,
    UserCreated,
    UserDeleted,
    assert_all_empty,
    connector,
    publish_raw,
    subscribers_spec,
)
from tests.integration.support import depth, get_messages, import_topology, wait_for

QUEUE = f"{ORG}.{SERVICE}.1.event.user.created.send_mail_handler"


def consumer_for(amqp_url: str, max_retries: int = 5, **options: int) -> RabbitMqEventConsumer:
    return RabbitMqEventConsumer(connector(amqp_url), ORG, SERVICE, max_retries=max_retries, **options)


def test_round_trip_and_the_store_receives_every_event(management_url: str, vhost: str, amqp_url: str) -> None:
    mail = Recorder("send_mail_handler")
    store = Recorder("event_store")
    subscribers = [EventSubscriber(UserCreated, [mail.handler])]
    import_topology(management_url, vhost, subscribers_spec(subscribers, store=True))
    consumer = consumer_for(amqp_url)
    consumer.consume(subscribers)
    consumer.consume_store(store.handler)
    consumer.start()
    bus = RabbitMqEventBus(connector(amqp_url), ORG, SERVICE)
    try:
        created = UserCreated(user_id="42").add_info_id(InfoId(user_id="42", correlation_id="c-1"))
        bus.publish([created, UserCreated(user_id="43"), UserDeleted(user_id="44")])
        wait_for(lambda: mail.count == 2 and store.count == 3, what="2 mails and 3 stored events")
    finally:
        bus.close()
        consumer.stop()
    first = mail.events[0]
    assert isinstance(first, UserCreated)
    assert {e.user_id for e in mail.events} == {"42", "43"}
    received = next(e for e in mail.events if e.user_id == "42")
    assert received.id == created.id
    assert received.info_id() == InfoId(user_id="42", correlation_id="c-1")
    assert sorted(e.message_type for e in store.events) == ["user.created", "user.created", "user.deleted"]
    assert mail.count == 2 and store.count == 3  # nothing delivered twice
    assert_all_empty(management_url, amqp_url, vhost)


def test_fails_twice_then_succeeds_three_calls_nothing_left(management_url: str, vhost: str, amqp_url: str) -> None:
    mail = Recorder("send_mail_handler", outcomes=["fail", "raise", "ok"])
    subscribers = [EventSubscriber(UserCreated, [mail.handler])]
    import_topology(management_url, vhost, subscribers_spec(subscribers, retry_ttl=100))
    consumer = consumer_for(amqp_url, max_retries=5)
    consumer.consume(subscribers)
    with consumer, RabbitMqEventBus(connector(amqp_url), ORG, SERVICE) as bus:
        bus.publish(UserCreated(user_id="1"))
        wait_for(lambda: consumer.handled_count >= 3, what="three handler calls settled")
    assert mail.count == 3
    assert consumer.retried_count == 2 and consumer.dead_lettered_count == 0
    assert_all_empty(management_url, amqp_url, vhost)


def test_one_handler_failing_never_redelivers_to_the_other(management_url: str, vhost: str, amqp_url: str) -> None:
    mail = Recorder("send_mail_handler", outcomes=["fail", "ok"])
    audit = Recorder("audit_handler")
    subscribers = [EventSubscriber(UserCreated, [mail.handler, audit.handler])]
    import_topology(management_url, vhost, subscribers_spec(subscribers, retry_ttl=100))
    consumer = consumer_for(amqp_url)
    consumer.consume(subscribers)
    with consumer, RabbitMqEventBus(connector(amqp_url), ORG, SERVICE) as bus:
        bus.publish(UserCreated(user_id="1"))
        wait_for(lambda: mail.count == 2 and consumer.handled_count >= 3, what="retry of the failing handler")
    assert audit.count == 1


def test_always_failing_dead_letters_after_max_retries_with_reasons(
    management_url: str, vhost: str, amqp_url: str
) -> None:
    mail = Recorder("send_mail_handler", outcomes=["raise", "fail", "raise", "ok"])
    subscribers = [EventSubscriber(UserCreated, [mail.handler])]
    import_topology(management_url, vhost, subscribers_spec(subscribers, retry_ttl=100))
    consumer = consumer_for(amqp_url, max_retries=2)
    consumer.consume(subscribers)
    dead_letter = f"dead_letter.{QUEUE}"
    event = UserCreated(user_id="9")
    with consumer, RabbitMqEventBus(connector(amqp_url), ORG, SERVICE) as bus:
        bus.publish(event, headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
        wait_for(lambda: depth(amqp_url, dead_letter) == 1, what="the message in the dead-letter queue")
    assert mail.count == 3  # max_retries=2: at most 3 calls
    [message] = get_messages(management_url, vhost, dead_letter)
    headers = message["properties"]["headers"]
    assert headers[retry.DEAD_LETTER_REASON] == retry.REASON_RETRIES_EXHAUSTED
    assert headers[retry.RETRY_COUNT] == 2
    assert headers[retry.ERROR_TYPE] == "RuntimeError"
    assert headers[retry.ERROR_MESSAGE] == "call 3 failed"
    assert headers[retry.HANDLER] == "send_mail_handler"
    assert headers[retry.ORIGINAL_QUEUE] == QUEUE
    assert headers[retry.ORIGINAL_ROUTING_KEY] == f"{ORG}.{SERVICE}.1.event.user.created"
    assert headers[retry.FIRST_FAILURE_AT] <= headers[retry.LAST_FAILURE_AT]
    assert headers["traceparent"].startswith("00-0af7")
    assert message["properties"]["message_id"] == event.id
    assert json.loads(message["payload"])["data"]["attributes"] == {"user_id": "9"}
    assert depth(amqp_url, QUEUE) == 0 and depth(amqp_url, f"retry.{QUEUE}") == 0


def test_retry_delay_is_honoured(management_url: str, vhost: str, amqp_url: str) -> None:
    mail = Recorder("send_mail_handler", outcomes=["fail", "fail", "ok"])
    subscribers = [EventSubscriber(UserCreated, [mail.handler])]
    import_topology(management_url, vhost, subscribers_spec(subscribers, retry_ttl=300))
    consumer = consumer_for(amqp_url)
    consumer.consume(subscribers)
    with consumer, RabbitMqEventBus(connector(amqp_url), ORG, SERVICE) as bus:
        bus.publish(UserCreated(user_id="1"))
        wait_for(lambda: mail.count == 3, what="three calls")
    times = [t for t, _ in mail.calls]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= 0.29 for gap in gaps), gaps  # never early (timer resolution: 10 ms)
    assert all(gap < 3.0 for gap in gaps), gaps


def test_poison_and_unexpected_type_go_to_the_dead_letter_queue_at_once(
    management_url: str, vhost: str, amqp_url: str
) -> None:
    mail = Recorder("send_mail_handler")
    subscribers = [EventSubscriber(UserCreated, [mail.handler])]
    import_topology(management_url, vhost, subscribers_spec(subscribers))
    consumer = consumer_for(amqp_url)
    consumer.consume(subscribers)
    routing_key = f"{ORG}.{SERVICE}.1.event.user.created"
    dead_letter = f"dead_letter.{QUEUE}"
    with consumer:
        publish_raw(amqp_url, routing_key, b"\x00not json at all")
        publish_raw(amqp_url, routing_key, encode(UserDeleted(user_id="1"), ORG, SERVICE).body)
        wait_for(lambda: depth(amqp_url, dead_letter) == 2, what="two dead letters")
        with RabbitMqEventBus(connector(amqp_url), ORG, SERVICE) as bus:  # still consuming
            bus.publish(UserCreated(user_id="ok"))
        wait_for(lambda: mail.count == 1, what="the valid event")
    assert [e.user_id for e in mail.events] == ["ok"]
    messages = get_messages(management_url, vhost, dead_letter, count=5)
    reasons = [m["properties"]["headers"] for m in messages]
    assert all(h[retry.DEAD_LETTER_REASON] == retry.REASON_POISON for h in reasons)
    assert all(h[retry.RETRY_COUNT] == 0 for h in reasons)
    texts = " | ".join(h[retry.ERROR_MESSAGE] for h in reasons)
    assert "not JSON" in texts and "unexpected message type 'user.deleted'" in texts
    assert depth(amqp_url, f"retry.{QUEUE}") == 0


def test_start_fails_clearly_when_the_topology_is_missing(vhost: str, amqp_url: str) -> None:
    mail = Recorder("send_mail_handler")
    consumer = consumer_for(amqp_url)
    consumer.consume([EventSubscriber(UserCreated, [mail.handler])])
    with pytest.raises(TopologyMissing) as raised:
        consumer.start()
    text = str(raised.value)
    assert QUEUE in text and "rabbitform plan" in text and "rabbitform apply" in text
    assert not consumer.is_running


def test_stop_finishes_the_messages_in_hand(management_url: str, vhost: str, amqp_url: str) -> None:
    slow = Recorder("send_mail_handler", sleep=0.3)
    subscribers = [EventSubscriber(UserCreated, [slow.handler])]
    import_topology(management_url, vhost, subscribers_spec(subscribers))
    consumer = consumer_for(amqp_url, workers=2, prefetch=10)
    consumer.consume(subscribers)
    consumer.start()
    with RabbitMqEventBus(connector(amqp_url), ORG, SERVICE) as bus:
        bus.publish([UserCreated(user_id=str(i)) for i in range(6)])
    wait_for(lambda: slow.count >= 1, what="the first call")
    consumer.stop()
    handled = slow.count
    assert consumer.handled_count == handled  # every call that started was acked
    assert depth(amqp_url, QUEUE) == 6 - handled  # the rest is back in the queue, not lost
    with pytest.raises(BusError, match="cannot be started again"):
        consumer.start()


def test_the_store_retries_and_dead_letters_like_any_queue(management_url: str, vhost: str, amqp_url: str) -> None:
    store = Recorder("event_store", outcomes=["fail", "ok", "raise", "raise"])
    import_topology(management_url, vhost, subscribers_spec([], retry_ttl=100, store=True))
    consumer = consumer_for(amqp_url, max_retries=1)
    consumer.consume_store(store.handler)
    with consumer, RabbitMqEventBus(connector(amqp_url), ORG, SERVICE) as bus:
        bus.publish(UserCreated(user_id="1"))
        wait_for(lambda: store.count == 2, what="the store's retry")
        bus.publish(UserDeleted(user_id="2"))
        wait_for(lambda: depth(amqp_url, "dead_letter.store") == 1, what="the store's dead letter")
    assert store.count == 4
    [message] = get_messages(management_url, vhost, "dead_letter.store")
    assert message["properties"]["headers"][retry.ORIGINAL_QUEUE] == "store"
    assert depth(amqp_url, "store") == 0 and depth(amqp_url, "retry.store") == 0
