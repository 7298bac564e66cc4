"""The outbox and the inbox with the in-memory broker on in-memory SQLite: what a service's
unit tests assert (committed means published, rolled back means not; a duplicate has no effect)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

pytest.importorskip("sqlalchemy")

from meiga import Error, Failure, isSuccess
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.orm import Session

from bus_runtime import Event, EventSubscriber
from bus_runtime.bus import outgoing
from bus_runtime.memory import InMemoryBroker
from bus_runtime.outbox import Inbox, Outbox, OutboxRelay
from topology.spec.loader import parse_spec

SPEC = """
organization: acme
services:
  orders:
    events:
      OrderPlaced:
        subscribers:
          bill_order_handler: {}
"""
QUEUE = "acme.orders.1.event.order.placed.bill_order_handler"
state = MetaData()
orders = Table("orders", state, Column("id", String(40), primary_key=True))
bills = Table("bills", state, Column("order_id", String(40), primary_key=True), Column("n", Integer))


class OrderPlaced(Event):
    order_id: str


@pytest.fixture
def outbox() -> Outbox:
    box = Outbox("sqlite://")
    box.create_tables()
    state.create_all(box.engine)
    return box


@pytest.fixture
def broker() -> InMemoryBroker:
    return InMemoryBroker.from_spec(parse_spec(SPEC))


def place(outbox: Outbox, order_id: str, commit: bool = True) -> None:
    with Session(outbox.engine) as session:
        session.execute(insert(orders).values(id=order_id))
        outbox.add(session, OrderPlaced(order_id=order_id), organization="acme", service="orders")
        session.commit() if commit else session.rollback()


def test_committed_is_published_rolled_back_is_not(outbox: Outbox, broker: InMemoryBroker) -> None:
    place(outbox, "o-1")
    place(outbox, "o-2", commit=False)
    place(outbox, "o-3")
    relay = OutboxRelay.in_memory(outbox, broker)
    assert relay.run_once() == 2
    assert [m.decode(OrderPlaced).order_id for m in broker.messages(QUEUE)] == ["o-1", "o-3"]
    assert relay.run_once() == 0  # marked sent: never twice


def test_stored_exactly_as_the_bus_publishes(outbox: Outbox, broker: InMemoryBroker) -> None:
    event = OrderPlaced(order_id="o-1")
    expected = outgoing(event, "acme", "orders", {"traceparent": "00-abc-def-01"})
    with Session(outbox.engine) as session, session.begin():
        ids = outbox.add(
            session, [event], organization="acme", service="orders", headers={"traceparent": "00-abc-def-01"}
        )
    assert ids == [event.id]
    OutboxRelay.in_memory(outbox, broker).run_once()
    (message,) = broker.messages(QUEUE)
    assert (message.exchange, message.routing_key, message.body) == (
        expected.exchange,
        expected.routing_key,
        expected.body,
    )
    assert dict(message.headers) == expected.properties.headers
    assert message.properties.message_id == expected.properties.message_id == event.id
    assert message.properties.app_id == "orders"


def test_inbox_runs_a_handler_once_per_message_in_its_transaction(outbox: Outbox, broker: InMemoryBroker) -> None:
    inbox = Inbox(outbox.engine)
    calls: list[str] = []

    def bill_order_handler(event: OrderPlaced, session: Session) -> object:
        calls.append(event.order_id)
        session.execute(insert(bills).values(order_id=event.order_id, n=1))
        return isSuccess

    broker.consumer("orders", [EventSubscriber(OrderPlaced, [bill_order_handler])], inbox=inbox)
    place(outbox, "o-1")
    relay = OutboxRelay.in_memory(outbox, broker)
    relay.run_once()
    broker.run_until_idle()
    # the relay publishes it again (e.g. killed before marking it sent): same message id
    with outbox.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE rabbitform_outbox SET sent_at = NULL")
    relay.run_once()
    broker.run_until_idle()
    assert calls == ["o-1"] and inbox.duplicates == 1
    with Session(outbox.engine) as session:
        assert session.execute(select(func.count()).select_from(bills)).scalar() == 1


def test_a_failing_handler_rolls_back_and_is_retried(outbox: Outbox, broker: InMemoryBroker) -> None:
    inbox = Inbox(outbox.engine)
    attempts: list[int] = []

    def bill_order_handler(event: OrderPlaced, session: Session) -> object:
        attempts.append(1)
        session.execute(insert(bills).values(order_id=event.order_id, n=len(attempts)))
        return Failure(Error()) if len(attempts) < 3 else isSuccess

    broker.consumer("orders", [EventSubscriber(OrderPlaced, [bill_order_handler])], inbox=inbox)
    place(outbox, "o-1")
    OutboxRelay.in_memory(outbox, broker).run_once()
    broker.run_until_idle()
    assert len(attempts) == 3
    with Session(outbox.engine) as session:
        assert session.execute(select(bills.c.n)).scalars().all() == [3]  # the failed attempts left nothing


def test_a_handler_without_session_is_guarded_too(outbox: Outbox, broker: InMemoryBroker) -> None:
    inbox = Inbox(outbox.engine)
    seen: list[str] = []

    def bill_order_handler(event: OrderPlaced) -> object:
        seen.append(event.id)
        return isSuccess

    broker.consumer("orders", [EventSubscriber(OrderPlaced, [bill_order_handler])], inbox=inbox)
    bus = broker.event_bus("orders")
    event = OrderPlaced(order_id="o-1")
    bus.publish(event)
    bus.publish(event)
    broker.run_until_idle()
    assert seen == [event.id] and inbox.seen(event.id, QUEUE)
    assert broker.calls("bill_order_handler") == 2  # delivered twice, the handler ran once
    assert inbox.purge(before=float("inf")) == 1 and not inbox.seen(event.id, QUEUE)


def test_add_validates_names_and_accepts_an_empty_batch(outbox: Outbox) -> None:
    with Session(outbox.engine) as session:
        assert outbox.add(session, [], organization="acme", service="orders") == []
        with pytest.raises(ValueError, match="invalid organization/service"):
            outbox.add(session, OrderPlaced(order_id="1"), organization="Acme", service="orders")


def test_the_docs_example(make_memory_broker: Callable[..., InMemoryBroker]) -> None:
    """docs/outbox.md, "In a service's unit tests", kept true."""
    from examples.outbox.billing import bill_order_handler
    from examples.outbox.model import OrderPlaced as ShopOrderPlaced
    from examples.outbox.model import invoices, tables
    from examples.outbox.orders import place_order

    memory_broker = make_memory_broker("examples/outbox/shop.yaml", consume=False)
    outbox = Outbox("sqlite://")  # in memory: the service, the relay and billing share it
    outbox.create_tables()
    tables.create_all(outbox.engine)
    memory_broker.consumer(
        "orders", [EventSubscriber(ShopOrderPlaced, [bill_order_handler])], inbox=Inbox(outbox.engine)
    )
    place_order(outbox, "o-1", 1250)
    with pytest.raises(RuntimeError):
        place_order(outbox, "o-2", 990, fail=True)  # rolled back
    assert OutboxRelay.in_memory(outbox, memory_broker).run_once() == 1
    memory_broker.run_until_idle()
    assert memory_broker.calls("bill_order_handler") == 1
    with Session(outbox.engine) as session:
        assert session.execute(select(invoices.c.order_id)).scalars().all() == ["o-1"]
