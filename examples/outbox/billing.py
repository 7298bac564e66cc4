"""Billing's handler: an invoice per order, written in the inbox's transaction.

`rabbitform consume examples/outbox/shop.yaml --inbox-database-url URL` passes `session`: the
invoice and the inbox's record of the message commit together before the ack, so a message
delivered again is acked without a second invoice.
"""

from __future__ import annotations

from meiga import BoolResult, isSuccess
from sqlalchemy import insert
from sqlalchemy.orm import Session

from examples.outbox.model import OrderPlaced, invoices, tables


def bill_order_handler(event: OrderPlaced, session: Session) -> BoolResult:
    tables.create_all(session.connection())  # the example's own table, where missing
    session.execute(insert(invoices).values(order_id=event.order_id, total_cents=event.total_cents))
    print(f"invoice for order {event.order_id}: {event.total_cents / 100:.2f}", flush=True)
    return isSuccess
