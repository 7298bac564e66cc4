"""The shop's tables and its event: an order, an invoice per order, and `OrderPlaced`."""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table

from bus_runtime import Event

tables = MetaData()
orders = Table("orders", tables, Column("id", String(40), primary_key=True), Column("total_cents", Integer))
invoices = Table(
    "invoices",
    tables,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("order_id", String(40), nullable=False),
    Column("total_cents", Integer, nullable=False),
)


class OrderPlaced(Event):
    order_id: str
    total_cents: int
