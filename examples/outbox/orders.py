"""`python -m examples.outbox.orders DATABASE_URL ORDER_ID CENTS [--fail]`: place an order.

The order row and its `OrderPlaced` commit in one transaction; with `--fail` the service fails
after writing both and the transaction rolls back: neither the order nor the event exists.
"""

from __future__ import annotations

import sys

from sqlalchemy import insert
from sqlalchemy.orm import Session

from bus_runtime.outbox import Outbox
from examples.outbox.model import OrderPlaced, orders, tables


def place_order(outbox: Outbox, order_id: str, total_cents: int, fail: bool = False) -> None:
    with Session(outbox.engine) as session, session.begin():
        session.execute(insert(orders).values(id=order_id, total_cents=total_cents))
        event = OrderPlaced(order_id=order_id, total_cents=total_cents)
        outbox.add(session, event, organization="shop", service="orders")
        if fail:
            raise RuntimeError(f"payment declined for {order_id}")  # rolls back the order and the event
    print(f"order {order_id} committed with OrderPlaced {event.id}")


if __name__ == "__main__":
    url, order_id, cents = sys.argv[1:4]
    outbox = Outbox(url)
    tables.create_all(outbox.engine)
    try:
        place_order(outbox, order_id, int(cents), fail="--fail" in sys.argv)
    except RuntimeError as exc:
        print(f"order {order_id} rolled back: {exc}")
