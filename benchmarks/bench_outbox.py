"""Outbox relay and inbox consumption, each against its plain counterpart in the same run.

- relay throughput: the same events stored in a PostgreSQL outbox (not timed), then published
  by `OutboxRelay` (claim, confirmed publish, mark sent) until none is due, against
  `RabbitMqEventBus.publish` of the same number of events (target >= 0.5x);
- inbox consumption: a preloaded queue consumed by `RabbitMqEventConsumer` with an `Inbox` on
  PostgreSQL (one transaction per message: the record and the handler's session, committed
  before the ack) against the same consumer without one (target >= 0.5x).

Each measurement has a vhost of its own and a fresh database on the private PostgreSQL of
scripts/postgres-up (127.0.0.1:5433), or `RABBITFORM_BENCH_DATABASE_URL`'s server.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from meiga import isSuccess
from sqlalchemy.orm import Session

from benchmarks.bench_runtime import (
    ORG,
    QUEUE,
    SERVICE,
    UserCreated,
    bench_vhost,
    events,
    our_consume,
    our_publish,
    preload,
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
from bus_runtime.subscriber import EventSubscriber

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


def own_transaction_consume(server: str, count: int, prefetch: int, workers: int) -> float:
    """Informative: a handler committing one transaction of its own per message, no inbox."""
    from sqlalchemy import Column, MetaData, String, Table, create_engine, insert

    bodies = [outgoing(e, ORG, SERVICE).body for e in events(count)]
    with bench_vhost("own-tx") as vhost, scratch_database(server) as database:
        engine = create_engine(database.replace("postgresql://", "postgresql+psycopg://"), pool_size=workers)
        table = Table("handled", MetaData(), Column("id", String(64), primary_key=True))
        table.metadata.create_all(engine)

        def noop_handler(event: UserCreated) -> Any:
            with Session(engine) as session, session.begin():
                session.execute(insert(table).values(id=event.id))
            return isSuccess

        preload(vhost, bodies)
        consumer = RabbitMqEventConsumer(
            RabbitMqConnector(url(vhost)), ORG, SERVICE, max_retries=0, prefetch=prefetch, workers=workers
        )
        consumer.consume([EventSubscriber(UserCreated, [noop_handler])])
        began = time.perf_counter()
        consumer.start()
        wait_until(lambda: consumer.handled_count >= count, timeout=600)
        elapsed = time.perf_counter() - began
        consumer.stop()
        engine.dispose()
    return count / elapsed


def inbox_consume(server: str, count: int, prefetch: int, workers: int) -> float:
    bodies = [outgoing(e, ORG, SERVICE).body for e in events(count)]
    with bench_vhost("inbox") as vhost, scratch_database(server) as database:
        inbox = Inbox(database)
        inbox.create_tables()
        preload(vhost, bodies)
        consumer = RabbitMqEventConsumer(
            RabbitMqConnector(url(vhost)), ORG, SERVICE, max_retries=0, prefetch=prefetch, workers=workers, inbox=inbox
        )
        consumer.consume([EventSubscriber(UserCreated, [noop_handler])])
        began = time.perf_counter()
        consumer.start()
        wait_until(lambda: consumer.handled_count >= count, timeout=600)
        elapsed = time.perf_counter() - began
        consumer.stop()
        inbox.engine.dispose()
        if queue_depth(vhost, QUEUE) != 0:
            raise RuntimeError("the inbox consumer left messages behind")
    return count / elapsed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks outbox", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000, help="events per relay/publish measurement (20000)")
    parser.add_argument("--consume-count", type=int, default=10_000, help="messages per consume measurement (10000)")
    parser.add_argument("--batch", type=int, default=500, help="the relay's claim size (default 500)")
    parser.add_argument("--prefetch", type=int, default=100)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the best rate of each is kept (default 3)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    server = server_url()
    n, c = args.count, args.consume_count
    print(
        f"outbox benchmark: {n} events published, {c} consumed, relay batch {args.batch}, prefetch {args.prefetch}, "
        f"{args.workers} workers, PostgreSQL at {server.split('@', 1)[1]}, best of {args.rounds} rounds",
        flush=True,
    )
    steps: list[tuple[str, Callable[[], float]]] = [
        ("RabbitMqEventBus.publish (confirmed batch)", lambda: our_publish(n)),
        (f"OutboxRelay from PostgreSQL (batch {args.batch})", lambda: relay_rate(server, n, args.batch)),
        ("consume, no-op handler", lambda: our_consume(c, args.prefetch, args.workers)),
        ("consume with Inbox on PostgreSQL", lambda: inbox_consume(server, c, args.prefetch, args.workers)),
        (
            "consume, handler committing its own transaction",
            lambda: own_transaction_consume(server, c, args.prefetch, args.workers),
        ),
    ]
    rates = best_of(steps, args.rounds, 48)
    publish, relay, plain, inboxed, own = rates.values()
    print(f"ratios (inbox vs a handler committing its own transaction, no inbox: {inboxed / own:.2f}x, informative):")
    checks = [("relay vs bus publish", relay / publish, 0.5), ("inbox vs plain consume", inboxed / plain, 0.5)]
    return 0 if judged(checks, 24) else 1
