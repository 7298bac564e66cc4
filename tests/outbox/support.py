"""What the outbox tests share: the spec, its topology on a vhost, the service's tables, and
counting what arrived and what took effect."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pika
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.orm import Session

from benchmarks.raw_pika import declare_topology
from bus_runtime.message import Event
from bus_runtime.outbox import Outbox
from tests.integration import support
from topology.compile.compiler import compile_spec
from topology.spec.loader import parse_spec
from topology.spec.model import Spec

ROOT = Path(__file__).resolve().parents[2]
ORG = "acme"
SERVICES = ("orders", "billing", "shipping", "stock")
AUDIT_QUEUE = "test.audit"  # hears every service's events, in arrival order

SPEC_TEXT = """
organization: acme
vhost: {vhost}
defaults:
  queue_type: classic
  retry: {{delay_ms: 200, max_retries: 3}}
services:
  orders:
    events:
      OrderPlaced:
        subscribers:
          bill_order_handler:
            handler: tests.outbox.handlers:bill_order_handler
"""

service_tables = MetaData()
orders = Table("orders", service_tables, Column("id", String(40), primary_key=True))
# one row per handler effect (no unique key): a second effect of one message would show
effects = Table(
    "effects",
    service_tables,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("order_id", String(40), nullable=False),
)


class OrderPlaced(Event):
    order_id: str


def spec(vhost: str) -> Spec:
    return parse_spec(SPEC_TEXT.format(vhost=vhost))


def write_spec(directory: Path, vhost: str) -> Path:
    path = directory / "acme.yaml"
    path.write_text(SPEC_TEXT.format(vhost=vhost))
    return path


def declare(amqp_url: str, vhost: str) -> None:
    """The spec's objects over AMQP, plus an audit queue bound to every service's exchange."""
    topology = compile_spec(spec(vhost))
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        declare_topology(channel, topology)
        channel.queue_declare(AUDIT_QUEUE, durable=True)
        for service in SERVICES:
            channel.exchange_declare(f"{ORG}.{service}", "topic", durable=True)
            channel.queue_bind(AUDIT_QUEUE, f"{ORG}.{service}", "#")
    finally:
        connection.close()


def prepare_database(url: str) -> Outbox:
    outbox = Outbox(url)
    outbox.create_tables()
    service_tables.create_all(outbox.engine)
    return outbox


def commit_orders(
    outbox: Outbox, ids: Sequence[str], service: str = "orders", rollback: bool = False, per_transaction: int = 1
) -> None:
    """Orders and their events, `per_transaction` orders a transaction (rolled back when asked)."""
    for start in range(0, len(ids), per_transaction):
        chunk = ids[start : start + per_transaction]
        with Session(outbox.engine) as session:
            session.execute(insert(orders), [{"id": f"{service}:{order_id}"} for order_id in chunk])
            events = [OrderPlaced(order_id=order_id) for order_id in chunk]
            outbox.add(session, events, organization=ORG, service=service)
            session.rollback() if rollback else session.commit()


def due(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.exec_driver_sql("SELECT count(*) FROM rabbitform_outbox WHERE sent_at IS NULL").scalar())


def effect_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.execute(select(effects.c.order_id, func.count()).group_by(effects.c.order_id)).all()
    return {order_id: int(count) for order_id, count in rows}


def drain(amqp_url: str, queue: str) -> list[tuple[str, str, str]]:
    """Take every message of `queue`: (exchange, message id, order id) in queue order."""
    from bus_runtime.wire import decode

    taken: list[tuple[str, str, str]] = []
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        while True:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return taken
            event = decode(body, OrderPlaced)
            taken.append((method.exchange, properties.message_id, event.order_id))
    finally:
        connection.close()


def relay_command(database_url: str, amqp_url: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "topology.cli.main",
        "relay",
        "--database-url",
        database_url,
        "--url",
        amqp_url,
        *extra,
    ]


def start(command: Sequence[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 30.0, interval: float = 0.05) -> Any:
    """The integration tests' poll with a longer default: a relay backs off, and a database restarts."""
    return support.wait_for(condition, what, timeout, interval)


def stop(process: subprocess.Popen[bytes], timeout: float = 20.0) -> int:
    if process.poll() is None:
        process.terminate()
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait(timeout)
