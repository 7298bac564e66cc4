"""Outbox relay and inbox consumption, each against its plain counterpart in the same run.

- relay throughput: the same events stored in a PostgreSQL outbox (not timed), then published
  by `OutboxRelay` (claim, confirmed publish, mark sent) until none is due, against
  `RabbitMqEventBus.publish` of the same number of events (target >= 0.5x);
- inbox consumption: a queue preloaded with the messages as the bus (or the relay) publishes
  them, consumed by `RabbitMqEventConsumer` with an `Inbox` (the records and the handlers'
  session committed before the acks, several deliveries a transaction), on PostgreSQL and on a
  SQLite file, against the same consumer without an inbox on the same messages (target >= 0.5x).

Each measurement has a vhost of its own and a fresh database on the private PostgreSQL of
scripts/postgres-up (127.0.0.1:5433), or `RABBITFORM_BENCH_DATABASE_URL`'s server.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from meiga import isSuccess
from sqlalchemy.orm import Session

from benchmarks.bench_runtime import (
    EXCHANGE,
    ORG,
    QUEUE,
    SERVICE,
    UserCreated,
    bench_vhost,
    blocking,
    events,
    our_publish,
    queue_depth,
    url,
    wait_depth,
    wait_until,
)
from benchmarks.rounds import best_of, judged
from bus_runtime.bus import outgoing
from bus_runtime.connector import RabbitMqConnector
from bus_runtime.consumer import RabbitMqEventConsumer
from bus_runtime.outbox import Inbox, Outbox, OutboxRelay
from bus_runtime.subscriber import EventSubscriber, Handler

ROOT = Path(__file__).resolve().parents[1]


def server_url() -> str:
    configured = os.environ.get("RABBITFORM_BENCH_DATABASE_URL")
    if configured:
        return configured
    result = subprocess.run([str(ROOT / "scripts" / "postgres-up")], capture_output=True, text=True, check=True)
    return result.stdout.strip().splitlines()[-1]


@contextlib.contextmanager
def scratch_database(server: str) -> Iterator[str]:
    """A fresh database on the server (as its superuser `postgres`), dropped afterwards."""
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:10]}"
    host = server.split("@", 1)[1].split("/", 1)[0]
    admin_url = f"postgresql://postgres@{host}/postgres"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" OWNER rabbitform')
    try:
        yield server.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def relay_rate(server: str, count: int, batch: int) -> float:
    with bench_vhost("relay") as vhost, scratch_database(server) as database:
        outbox = Outbox(database)
        outbox.create_tables()
        batch_events = events(count)
        with Session(outbox.engine) as session, session.begin():
            outbox.add(session, batch_events[:1], organization=ORG, service=SERVICE)
        relay = OutboxRelay(outbox, connector=RabbitMqConnector(url(vhost)), batch=batch)
        try:
            relay.run_once()  # connects outside the timing, as the bus's first message does
            for start in range(1, count, 1000):  # stored in transactions of 1,000 (not timed)
                with Session(outbox.engine) as session, session.begin():
                    chunk = batch_events[start : start + 1000]
                    outbox.add(session, chunk, organization=ORG, service=SERVICE)
            began = time.perf_counter()
            sent = relay.run_once()
            elapsed = time.perf_counter() - began
        finally:
            relay.sink.close()
            outbox.engine.dispose()
        if sent != count - 1:
            raise RuntimeError(f"the relay sent {sent} of {count - 1}")
        wait_depth(vhost, QUEUE, count)
    return (count - 1) / elapsed


def noop_handler(_event: UserCreated, session: Session) -> Any:
    return isSuccess


def plain_handler(_event: UserCreated) -> Any:
    return isSuccess


plain_handler.__name__ = "noop_handler"  # the same queue


def preload_published(vhost: str, count: int) -> None:
    """Fill the subscriber queue with messages as the bus publishes them (message id and all)."""
    connection = blocking(vhost)
    channel = connection.channel()
    for event in events(count):
        message = outgoing(event, ORG, SERVICE)
        channel.basic_publish(EXCHANGE, message.routing_key, message.body, message.properties)
    connection.close()
    wait_depth(vhost, QUEUE, count)


def consume_rate(vhost: str, count: int, prefetch: int, workers: int, handler: Handler, inbox: Inbox | None) -> float:
    preload_published(vhost, count)
    consumer = RabbitMqEventConsumer(
        RabbitMqConnector(url(vhost)), ORG, SERVICE, max_retries=0, prefetch=prefetch, workers=workers, inbox=inbox
    )
    consumer.consume([EventSubscriber(UserCreated, [handler])])
    began = time.perf_counter()
    consumer.start()
    wait_until(lambda: consumer.handled_count >= count, timeout=600)
    elapsed = time.perf_counter() - began
    consumer.stop()
    if queue_depth(vhost, QUEUE) != 0:
        raise RuntimeError("the consumer left messages behind")
    return count / elapsed


def plain_consume(count: int, prefetch: int, workers: int) -> float:
    with bench_vhost("consume") as vhost:
        return consume_rate(vhost, count, prefetch, workers, plain_handler, None)


def own_transaction_consume(server: str, count: int, prefetch: int, workers: int) -> float:
    """Informative: a handler committing one transaction of its own per message, no inbox."""
    from sqlalchemy import Column, MetaData, String, Table, create_engine, insert

    with bench_vhost("own-tx") as vhost, scratch_database(server) as database:
        engine = create_engine(database.replace("postgresql://", "postgresql+psycopg://"), pool_size=workers)
        table = Table("handled", MetaData(), Column("id", String(64), primary_key=True))
        table.metadata.create_all(engine)

        def noop_handler(event: UserCreated) -> Any:
            with Session(engine) as session, session.begin():
                session.execute(insert(table).values(id=event.id))
            return isSuccess

        try:
            return consume_rate(vhost, count, prefetch, workers, noop_handler, None)
        finally:
            engine.dispose()


def inbox_consume(database: str, count: int, prefetch: int, workers: int, batch: int) -> float:
    with bench_vhost("inbox") as vhost:
        inbox = Inbox(database, batch=batch)
        inbox.create_tables()
        try:
            return consume_rate(vhost, count, prefetch, workers, noop_handler, inbox)
        finally:
            inbox.engine.dispose()


def postgres_inbox_consume(server: str, count: int, prefetch: int, workers: int, batch: int) -> float:
    with scratch_database(server) as database:
        return inbox_consume(database, count, prefetch, workers, batch)


def sqlite_inbox_consume(count: int, prefetch: int, workers: int, batch: int) -> float:
    with tempfile.TemporaryDirectory(prefix="rabbitform-bench-") as directory:
        return inbox_consume(f"sqlite:///{directory}/inbox.db", count, prefetch, workers, batch)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks outbox", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000, help="events per relay/publish measurement (20000)")
    parser.add_argument("--consume-count", type=int, default=10_000, help="messages per consume measurement (10000)")
    parser.add_argument("--batch", type=int, default=500, help="the relay's claim size (default 500)")
    parser.add_argument("--inbox-batch", type=int, default=50, help="the inbox's batch limit (default 50)")
    parser.add_argument("--prefetch", type=int, default=100)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the best rate of each is kept (default 3)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    server = server_url()
    n, c = args.count, args.consume_count
    print(
        f"outbox benchmark: {n} events published, {c} consumed, relay batch {args.batch}, prefetch {args.prefetch}, "
        f"{args.workers} workers, inbox batch {args.inbox_batch}, PostgreSQL at {server.split('@', 1)[1]}, best of {args.rounds} rounds",
        flush=True,
    )
    steps: list[tuple[str, Callable[[], float]]] = [
        ("RabbitMqEventBus.publish (confirmed batch)", lambda: our_publish(n)),
        (f"OutboxRelay from PostgreSQL (batch {args.batch})", lambda: relay_rate(server, n, args.batch)),
        ("consume, no-op handler", lambda: plain_consume(c, args.prefetch, args.workers)),
        (
            "consume with Inbox on PostgreSQL",
            lambda: postgres_inbox_consume(server, c, args.prefetch, args.workers, args.inbox_batch),
        ),
        (
            "consume with Inbox on a SQLite file",
            lambda: sqlite_inbox_consume(c, args.prefetch, args.workers, args.inbox_batch),
        ),
        (
            "consume, handler committing its own transaction",
            lambda: own_transaction_consume(server, c, args.prefetch, args.workers),
        ),
    ]
    rates = best_of(steps, args.rounds, 48)
    publish, relay, plain, inboxed, sqlite_inboxed, own = rates.values()
    print(f"ratios (inbox vs a handler committing its own transaction, no inbox: {inboxed / own:.2f}x, informative):")
    checks = [
        ("relay vs bus publish", relay / publish, 0.5),
        ("inbox (PostgreSQL) vs plain consume", inboxed / plain, 0.5),
        ("inbox (SQLite) vs plain consume", sqlite_inboxed / plain, 0.5),
    ]
    return 0 if judged(checks, 36) else 1
