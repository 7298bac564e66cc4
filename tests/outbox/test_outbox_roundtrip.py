"""Outbox -> relay -> RabbitMQ -> consumer with an inbox, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from meiga import isSuccess
from sqlalchemy import insert
from sqlalchemy.orm import Session

from bus_runtime import EventSubscriber, RabbitMqConnector, RabbitMqEventConsumer
from bus_runtime.aio import AsyncRabbitMqEventConsumer
from bus_runtime.outbox import Inbox, OutboxRelay
from tests.outbox.support import (
    AUDIT_QUEUE,
    ORG,
    OrderPlaced,
    commit_orders,
    declare,
    drain,
    due,
    effect_counts,
    effects,
    prepare_database,
    relay_command,
    start,
    stop,
    wait_for,
)

pytestmark = pytest.mark.integration
BILL_QUEUE = "acme.orders.1.event.order.placed.bill_order_handler"


def test_committed_events_arrive_in_order_rolled_back_never(database_url: str, amqp_url: str, vhost: str) -> None:
    declare(amqp_url, vhost)
    outbox = prepare_database(database_url)
    commit_orders(outbox, [f"a{i}" for i in range(30)])
    commit_orders(outbox, [f"x{i}" for i in range(5)], rollback=True)
    commit_orders(outbox, [f"a{i}" for i in range(30, 60)], service="billing")
    relay = OutboxRelay(outbox, connector=RabbitMqConnector(amqp_url), batch=7)
    try:
        assert relay.run_once() == 60
        assert relay.run_once() == 0
    finally:
        relay.sink.close()
    arrived = drain(amqp_url, AUDIT_QUEUE)
    assert [order for _, _, order in arrived] == [f"a{i}" for i in range(60)]  # insertion order, none rolled back
    assert due(outbox.engine) == 0


def test_inbox_consumer_has_one_effect_per_message(database_url: str, amqp_url: str, vhost: str) -> None:
    declare(amqp_url, vhost)
    outbox = prepare_database(database_url)
    inbox = Inbox(database_url)
    calls: list[str] = []

    def bill_order_handler(order: OrderPlaced, session: Session) -> object:
        calls.append(order.order_id)
        session.execute(insert(effects).values(order_id=order.order_id))
        return isSuccess

    ids = [f"o{i}" for i in range(40)]
    commit_orders(outbox, ids)
    relay = OutboxRelay(outbox, connector=RabbitMqConnector(amqp_url))
    try:
        relay.run_once()
        with outbox.engine.begin() as connection:  # as if the relay died before marking: all again
            connection.exec_driver_sql("UPDATE rabbitform_outbox SET sent_at = NULL")
        relay.run_once()
    finally:
        relay.sink.close()
    consumer = RabbitMqEventConsumer(RabbitMqConnector(amqp_url), ORG, "orders", inbox=inbox, workers=4)
    consumer.consume([EventSubscriber(OrderPlaced, [bill_order_handler])])
    with consumer:
        wait_for(lambda: consumer.handled_count == 80, "80 deliveries settled")
    assert effect_counts(outbox.engine) == dict.fromkeys(ids, 1)
    # a copy handled while the first was still running is rolled back when its record collides
    assert set(calls) == set(ids) and inbox.duplicates == 40


def test_async_consumer_with_inbox(pg_url: str, amqp_url: str, vhost: str) -> None:
    declare(amqp_url, vhost)
    outbox = prepare_database(pg_url)
    ids = [f"o{i}" for i in range(10)]
    commit_orders(outbox, ids)
    relay = OutboxRelay(outbox, connector=RabbitMqConnector(amqp_url))
    try:
        relay.run_once()
        with outbox.engine.begin() as connection:
            connection.exec_driver_sql("UPDATE rabbitform_outbox SET sent_at = NULL WHERE id <= 3")
        relay.run_once()
    finally:
        relay.sink.close()

    async def bill_order_handler(order: OrderPlaced, session: Session) -> object:
        await asyncio.sleep(0)
        session.execute(insert(effects).values(order_id=order.order_id))
        return isSuccess

    async def run() -> None:
        consumer = AsyncRabbitMqEventConsumer(RabbitMqConnector(amqp_url), ORG, "orders", inbox=Inbox(pg_url))
        consumer.consume([EventSubscriber(OrderPlaced, [bill_order_handler])])
        async with consumer:
            deadline = asyncio.get_running_loop().time() + 30
            while consumer.handled_count < 13:
                assert asyncio.get_running_loop().time() < deadline, "13 deliveries settled"
                await asyncio.sleep(0.05)

    asyncio.run(run())
    assert effect_counts(outbox.engine) == dict.fromkeys(ids, 1)


def test_sqlite_runs_one_relay_at_a_time(sqlite_url: str, amqp_url: str, vhost: str, tmp_path: Path) -> None:
    declare(amqp_url, vhost)
    prepare_database(sqlite_url)
    first = start(relay_command(sqlite_url, amqp_url), tmp_path / "first.log")
    try:
        wait_for(lambda: "relaying the outbox" in (tmp_path / "first.log").read_text(), "the first relay")
        wait_for(lambda: Path(sqlite_url.removeprefix("sqlite:///") + ".relay.lock").read_text(), "its lock")
        second = start(relay_command(sqlite_url, amqp_url), tmp_path / "second.log")
        assert second.wait(30) == 1
        text = (tmp_path / "second.log").read_text()
        assert "another relay (pid" in text and "one relay runs at a time" in text and "Traceback" not in text
    finally:
        assert stop(first) == 0


def test_several_relays_on_postgresql_share_the_streams_in_order(
    pg_url: str, amqp_url: str, vhost: str, tmp_path: Path
) -> None:
    declare(amqp_url, vhost)
    outbox = prepare_database(pg_url)
    services = ("orders", "billing", "shipping", "stock")
    for start_at in range(0, 200, 20):  # the streams' events interleaved in insertion order
        for service in services:
            commit_orders(
                outbox, [f"{service}-{i}" for i in range(start_at, start_at + 20)], service, per_transaction=20
            )
    logs = [tmp_path / f"relay{n}.log" for n in range(3)]
    relays = [start(relay_command(pg_url, amqp_url, "--batch", "10"), log) for log in logs]
    try:
        wait_for(lambda: due(outbox.engine) == 0, "every event sent", timeout=60)
    finally:
        assert [stop(relay) for relay in relays] == [0, 0, 0]
    published = [int(log.read_text().rsplit("relay stopped: ", 1)[1].split()[0]) for log in logs]
    assert sum(published) >= 800 and sum(1 for n in published if n) >= 2, published  # the work was shared
    firsts: dict[str, list[int]] = {}
    seen: set[str] = set()
    for exchange, _message_id, order_id in drain(amqp_url, AUDIT_QUEUE):
        if order_id not in seen:
            seen.add(order_id)
            firsts.setdefault(exchange, []).append(int(order_id.rsplit("-", 1)[1]))
    assert firsts == {f"{ORG}.{service}": list(range(200)) for service in services}  # each stream in order


def test_sent_rows_are_removed_after_the_retention_due_ones_never(database_url: str) -> None:
    from bus_runtime.outbox.store import OutboxStore

    outbox = prepare_database(database_url)
    commit_orders(outbox, ["a", "b", "c"], per_transaction=3)
    store = OutboxStore(outbox.engine)
    claim = store.claim(2)
    claim.done([row.id for row in claim.rows], now=100.0)
    assert store.purge_sent(before=50.0) == 0  # sent at 100: within the retention
    assert store.purge_sent(before=101.0) == 2
    assert store.due()[0] == 1 and store.purge_sent(before=1e12) == 0
