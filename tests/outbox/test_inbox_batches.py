"""Several deliveries in one inbox transaction, on SQLite and PostgreSQL: one failing handler
rolls back only its own writes and is retried, a duplicate inside the batch has no second
effect, a failed commit fails every delivery of the batch (each follows the retry policy) and
leaves nothing behind. The batches are handed to `run_batch` as the consumer does, so their
composition is exact; the last test forms them in a running consumer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pika
import pytest
from meiga import Error, Failure, isSuccess
from sqlalchemy import Column, Engine, MetaData, String, Table, UniqueConstraint, insert, text
from sqlalchemy.orm import Session

from bus_runtime import EventSubscriber, RabbitMqConnector, RabbitMqEventConsumer
from bus_runtime.batched import Costs, Delivery, run_batch, run_batch_async
from bus_runtime.bus import outgoing
from bus_runtime.outbox import Inbox
from bus_runtime.retry import Decision
from bus_runtime.subscriber import Subscription, subscriptions
from tests.outbox.support import ORG, OrderPlaced, declare, effect_counts, effects, prepare_database, wait_for

Handler = Callable[[OrderPlaced, Session], Any]


class Declined(Error):
    pass


def guarded(inbox: Inbox, handler: Handler, max_retries: int = 3) -> Subscription:
    (sub,) = subscriptions(ORG, "orders", [EventSubscriber(OrderPlaced, [handler])], max_retries)
    return inbox.guard(sub)


def deliveries(*order_ids: str) -> list[Delivery]:
    """Deliveries as the bus publishes them; the same order id twice is the same message twice."""
    made: dict[str, Delivery] = {}
    for order_id in order_ids:
        if order_id not in made:
            message = outgoing(OrderPlaced(order_id=order_id), ORG, "orders")
            made[order_id] = (message.body, message.routing_key, message.properties)
    return [made[order_id] for order_id in order_ids]


def no_bug(exc: BaseException, _index: int) -> Decision:
    raise AssertionError(f"unexpected: {exc!r}")


def recorded(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM rabbitform_inbox")).scalar_one())


def bill_order_handler(order: OrderPlaced, session: Session) -> Any:
    session.execute(insert(effects).values(order_id=order.order_id))
    if order.order_id.startswith("bad"):
        return Failure(Declined())
    if order.order_id.startswith("raise"):
        raise RuntimeError("the handler broke")
    return isSuccess


def test_a_failing_handler_rolls_back_only_its_own_writes(database_url: str) -> None:
    outbox = prepare_database(database_url)
    inbox = Inbox(database_url)
    inbox.create_tables()
    sub = guarded(inbox, bill_order_handler)
    batch = deliveries("o1", "bad2", "o3", "raise4", "o5")
    decisions = run_batch(sub, batch, no_bug, Costs())
    assert [d.action for d in decisions] == ["ack", "retry", "ack", "retry", "ack"]
    assert effect_counts(outbox.engine) == {"o1": 1, "o3": 1, "o5": 1}  # the failures' writes rolled back
    assert recorded(inbox.engine) == 3  # and their records: the retries run the handler again
    again = run_batch(sub, batch[:3], no_bug, Costs())  # redelivered
    assert [d.action for d in again] == ["ack", "retry", "ack"] and inbox.duplicates == 2
    assert effect_counts(outbox.engine) == {"o1": 1, "o3": 1, "o5": 1}


def test_a_duplicate_inside_a_batch_has_no_second_effect(database_url: str) -> None:
    outbox = prepare_database(database_url)
    inbox = Inbox(database_url)
    inbox.create_tables()
    calls: list[str] = []

    def bill_order_handler(order: OrderPlaced, session: Session) -> Any:
        calls.append(order.order_id)
        session.execute(insert(effects).values(order_id=order.order_id))
        return isSuccess

    sub = guarded(inbox, bill_order_handler)
    decisions = run_batch(sub, deliveries("d1", "d2", "d1", "d3", "d2"), no_bug, Costs())
    assert [d.action for d in decisions] == ["ack"] * 5
    assert calls == ["d1", "d2", "d3"] and inbox.duplicates == 2
    assert effect_counts(outbox.engine) == {"d1": 1, "d2": 1, "d3": 1} and recorded(inbox.engine) == 3


def test_a_failed_first_delivery_runs_again_for_its_duplicate_in_the_batch(database_url: str) -> None:
    outbox = prepare_database(database_url)
    inbox = Inbox(database_url)
    inbox.create_tables()
    attempts: list[str] = []

    def bill_order_handler(order: OrderPlaced, session: Session) -> Any:
        attempts.append(order.order_id)
        session.execute(insert(effects).values(order_id=order.order_id))
        return Failure(Declined()) if len(attempts) == 1 else isSuccess

    sub = guarded(inbox, bill_order_handler)
    decisions = run_batch(sub, deliveries("f1", "f1"), no_bug, Costs())
    assert [d.action for d in decisions] == ["retry", "ack"] and attempts == ["f1", "f1"]
    assert effect_counts(outbox.engine) == {"f1": 1} and recorded(inbox.engine) == 1


def test_a_failed_commit_fails_the_whole_batch(pg_url: str) -> None:
    """A deferred constraint fails at COMMIT: nothing of the batch stays, each delivery is retried."""
    outbox = prepare_database(pg_url)
    inbox = Inbox(pg_url)
    inbox.create_tables()
    table = Table(
        "invoices",
        MetaData(),
        Column("number", String(20)),
        UniqueConstraint("number", name="invoices_number", deferrable=True, initially="DEFERRED"),
    )
    table.create(outbox.engine)

    def bill_order_handler(order: OrderPlaced, session: Session) -> Any:
        session.execute(insert(effects).values(order_id=order.order_id))
        session.execute(insert(table).values(number="same" if order.order_id.startswith("clash") else order.order_id))
        return isSuccess

    sub = guarded(inbox, bill_order_handler)
    batch = deliveries("c1", "clash2", "c3", "clash4")
    decisions = run_batch(sub, batch, no_bug, Costs())
    assert [d.action for d in decisions] == ["retry"] * 4
    assert effect_counts(outbox.engine) == {} and recorded(inbox.engine) == 0
    assert [d.action for d in run_batch(sub, [batch[0], batch[2]], no_bug, Costs())] == ["ack", "ack"]
    assert effect_counts(outbox.engine) == {"c1": 1, "c3": 1}


def test_a_batch_of_async_handlers(database_url: str) -> None:
    import asyncio

    outbox = prepare_database(database_url)
    inbox = Inbox(database_url)
    inbox.create_tables()

    async def bill_order_handler(order: OrderPlaced, session: Session) -> Any:
        await asyncio.sleep(0)
        session.execute(insert(effects).values(order_id=order.order_id))
        return Failure(Declined()) if order.order_id.startswith("bad") else isSuccess

    sub = guarded(inbox, bill_order_handler)
    decisions = asyncio.run(run_batch_async(sub, deliveries("a1", "bad2", "a1", "a3"), no_bug, Costs()))
    assert [d.action for d in decisions] == ["ack", "retry", "ack", "ack"] and inbox.duplicates == 1
    assert effect_counts(outbox.engine) == {"a1": 1, "a3": 1}


def test_a_message_without_an_amqp_message_id_is_claimed_when_parsed(database_url: str) -> None:
    outbox = prepare_database(database_url)
    inbox = Inbox(database_url)
    inbox.create_tables()
    sub = guarded(inbox, bill_order_handler)
    bare = [(body, key, pika.BasicProperties()) for body, key, _properties in deliveries("b1", "b2", "b1")]
    assert [d.action for d in run_batch(sub, bare, no_bug, Costs())] == ["ack"] * 3
    assert effect_counts(outbox.engine) == {"b1": 1, "b2": 1} and inbox.duplicates == 1


@pytest.mark.integration
def test_consumer_batches_commit_what_succeeded_and_retry_what_failed(
    database_url: str, amqp_url: str, vhost: str
) -> None:
    """Through a running consumer: 300 deliveries arrive together (batches form), one order in
    ten is declined twice before it succeeds; each order has exactly one effect in the end."""
    declare(amqp_url, vhost)
    outbox = prepare_database(database_url)
    inbox = Inbox(database_url, batch=40)
    declined: dict[str, int] = {}
    ids = [f"n{i}" for i in range(300)]

    def bill_order_handler(order: OrderPlaced, session: Session) -> Any:
        session.execute(insert(effects).values(order_id=order.order_id))
        if int(order.order_id[1:]) % 10 == 0 and declined.get(order.order_id, 0) < 2:
            declined[order.order_id] = declined.get(order.order_id, 0) + 1
            return Failure(Declined())
        return isSuccess

    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    for message in (outgoing(OrderPlaced(order_id=i), ORG, "orders") for i in ids):
        channel.basic_publish(message.exchange, message.routing_key, message.body, message.properties)
    connection.close()
    consumer = RabbitMqEventConsumer(RabbitMqConnector(amqp_url), ORG, "orders", inbox=inbox, workers=4)
    consumer.consume([EventSubscriber(OrderPlaced, [bill_order_handler])])
    with consumer:
        wait_for(lambda: len(effect_counts(outbox.engine)) == 300, "every order handled", timeout=60)
        wait_for(lambda: consumer.handled_count >= 360, "every delivery settled")
    assert effect_counts(outbox.engine) == dict.fromkeys(ids, 1)
    assert consumer.retried_count == 60 and recorded(inbox.engine) == 300


@pytest.mark.integration
def test_slow_handlers_keep_running_in_parallel(pg_url: str, amqp_url: str, vhost: str) -> None:
    """A burst of deliveries whose handler waits: they spread over the workers, not one batch."""
    import threading

    declare(amqp_url, vhost)
    outbox = prepare_database(pg_url)
    inbox = Inbox(pg_url)
    lock = threading.Lock()
    active = [0, 0]  # running now, most at once
    together = threading.Event()

    def bill_order_handler(order: OrderPlaced, session: Session) -> Any:
        with lock:
            active[0] += 1
            active[1] = max(active)
            if active[1] >= 3:
                together.set()
        together.wait(10)  # a slow handler: until three run at once (or long enough to tell)
        session.execute(insert(effects).values(order_id=order.order_id))
        with lock:
            active[0] -= 1
        return isSuccess

    ids = [f"s{i}" for i in range(8)]
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    for message in (outgoing(OrderPlaced(order_id=i), ORG, "orders") for i in ids):
        channel.basic_publish(message.exchange, message.routing_key, message.body, message.properties)
    connection.close()
    consumer = RabbitMqEventConsumer(RabbitMqConnector(amqp_url), ORG, "orders", inbox=inbox, workers=4)
    consumer.consume([EventSubscriber(OrderPlaced, [bill_order_handler])])
    with consumer:
        wait_for(lambda: len(effect_counts(outbox.engine)) == 8, "every order handled", timeout=60)
    assert active[1] >= 3 and effect_counts(outbox.engine) == dict.fromkeys(ids, 1)
