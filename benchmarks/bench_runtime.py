"""Runtime benchmark: confirmed publishing and retrying consumption against raw pika and petisco.

Six measurements in one run, each in a vhost of its own (deleted afterwards):

1. raw pika `BlockingConnection` publish of N bodies, persistent, no confirms
2. `RabbitMqEventBus.publish(batch)`: N events, persistent, every one confirmed
3. petisco 2.2.3 `RabbitMqDomainEventBus.publish(event)`, one event per call (rate extrapolated)
4. raw pika consume + ack of N messages at the same prefetch
5. `RabbitMqEventConsumer` with a no-op handler at the same prefetch
6. petisco 2.2.3 `RabbitMqMessageConsumer` with a no-op subscriber, same prefetch

Targets (issue 4): publish >= 0.5x raw and >= 10x petisco; consume >= 0.5x raw and >= 5x petisco.
Run: `python -m benchmarks runtime` (or `make bench`). Needs the broker on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import quote

import pika
from meiga import isSuccess

from benchmarks.raw_pika import consume_and_ack
from benchmarks.rounds import best_of, judged
from benchmarks.scratch import scratch_vhost
from bus_runtime.bus import RabbitMqEventBus, outgoing
from bus_runtime.connector import RabbitMqConnector
from bus_runtime.consumer import RabbitMqEventConsumer
from bus_runtime.message import Event
from bus_runtime.subscriber import EventSubscriber
from bus_runtime.subscriber_spec import spec_for_subscribers
from topology.broker.management import ManagementClient
from topology.compile.compiler import compile_spec
from topology.compile.definitions import to_definitions

HOST = os.environ.get("RABBITMQ_HOST", "127.0.0.1")
PORT = int(os.environ.get("RABBITMQ_PORT", "5672"))
USER = os.environ.get("RABBITMQ_USER", "guest")
PASSWORD = os.environ.get("RABBITMQ_PASSWORD", "guest")
MANAGEMENT = os.environ.get("RABBITMQ_MANAGEMENT_URL", "http://127.0.0.1:15672").rstrip("/")
ORG, SERVICE = "bench", "runtime"


class UserCreated(Event):
    user_id: str


def noop_handler(_event: UserCreated) -> Any:
    return isSuccess


SUBSCRIBERS = [EventSubscriber(UserCreated, [noop_handler])]
QUEUE = f"{ORG}.{SERVICE}.1.event.user.created.noop_handler"
ROUTING_KEY = f"{ORG}.{SERVICE}.1.event.user.created"
EXCHANGE = f"{ORG}.{SERVICE}"


# ---------------------------------------------------------------- helpers


@contextlib.contextmanager
def bench_vhost(label: str) -> Iterator[str]:
    """A fresh vhost with our topology (exchange, queue, retry and dead-letter queues)."""
    client = ManagementClient.from_env(MANAGEMENT)
    try:
        with scratch_vhost(client, label, create=True) as name:
            spec = spec_for_subscribers(ORG, SERVICE, SUBSCRIBERS, vhost=name)
            client.post("definitions", name, body=to_definitions(compile_spec(spec), include_vhost=False))
            yield name
    finally:
        client.close()


def url(vhost: str) -> str:
    return f"amqp://{USER}:{PASSWORD}@{HOST}:{PORT}/{quote(vhost, safe='')}"


def blocking(vhost: str) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(url(vhost)))


def queue_depth(vhost: str, queue: str) -> int:
    connection = blocking(vhost)
    try:
        return int(connection.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        connection.close()


def wait_depth(vhost: str, queue: str, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while queue_depth(vhost, queue) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{queue} did not reach {count} messages")
        time.sleep(0.05)


def preload(vhost: str, bodies: Sequence[bytes]) -> None:
    """Fill the subscriber queue (not timed)."""
    connection = blocking(vhost)
    channel = connection.channel()
    properties = pika.BasicProperties(delivery_mode=2, content_type="application/json")
    for body in bodies:
        channel.basic_publish(EXCHANGE, ROUTING_KEY, body, properties)
    connection.close()
    wait_depth(vhost, QUEUE, len(bodies))


def wait_until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("benchmark timed out")
        time.sleep(0.002)


def events(count: int) -> list[UserCreated]:
    return [UserCreated(user_id=str(i)) for i in range(count)]


# ---------------------------------------------------------------- publish


def raw_publish(count: int) -> float:
    bodies = [outgoing(e, ORG, SERVICE).body for e in events(count)]
    with bench_vhost("raw-publish") as vhost:
        connection = blocking(vhost)
        channel = connection.channel()
        start = time.perf_counter()
        for body in bodies:
            channel.basic_publish(
                EXCHANGE, ROUTING_KEY, body, pika.BasicProperties(delivery_mode=2, content_type="application/json")
            )
        elapsed = time.perf_counter() - start
        connection.close()
        wait_depth(vhost, QUEUE, count)
    return count / elapsed


def confirmed_publish_seconds(
    connector: RabbitMqConnector, organization: str, service: str, batch: list[Event]
) -> float:
    """Seconds `RabbitMqEventBus.publish` takes for `batch[1:]`, every message confirmed; the
    first message connects outside the timing, like the raw baselines' connections."""
    bus = RabbitMqEventBus(connector, organization, service, timeout=120)
    try:
        bus.publish(batch[:1])
        start = time.perf_counter()
        bus.publish(batch[1:])
        return time.perf_counter() - start
    finally:
        bus.close()


def our_publish(count: int) -> float:
    with bench_vhost("publish") as vhost:
        elapsed = confirmed_publish_seconds(RabbitMqConnector(url(vhost)), ORG, SERVICE, list(events(count)))
        wait_depth(vhost, QUEUE, count)
    return (count - 1) / elapsed


def _petisco(vhost: str) -> Any:
    """Import petisco against `vhost`. Its connector is a singleton configured from
    RABBITMQ_HOST/USER/PASSWORD/PORT/PREFETCH_COUNT and has no vhost setting, so the
    connection parameters are given the benchmark's vhost here."""
    for key, value in {
        "RABBITMQ_HOST": HOST,
        "RABBITMQ_PORT": str(PORT),
        "RABBITMQ_USER": USER,
        "RABBITMQ_PASSWORD": PASSWORD,
    }.items():
        os.environ.setdefault(key, value)
    from loguru import logger

    logger.remove()  # petisco logs a warning per consumed message
    import petisco.extra.rabbitmq.shared.rabbitmq_connector as petisco_connector

    petisco_connector.ConnectionParameters = functools.partial(pika.ConnectionParameters, virtual_host=vhost)
    connector = petisco_connector.RabbitMqConnector()
    connector.close_all()
    return connector


def _petisco_event_class() -> Any:
    from petisco import DomainEvent

    class UserCreated(DomainEvent):
        user_id: str

    return UserCreated


def petisco_publish(count: int) -> float:
    with bench_vhost("petisco-publish") as vhost:
        connector = _petisco(vhost)
        from petisco.extra.rabbitmq import RabbitMqDomainEventBus

        cls = _petisco_event_class()
        batch = [cls(user_id=str(i)) for i in range(count)]
        bus = RabbitMqDomainEventBus(ORG, SERVICE, connector)
        bus.publish(batch[0])
        start = time.perf_counter()
        for event in batch[1:]:
            bus.publish(event)
        elapsed = time.perf_counter() - start
        connector.close_all()
    return (count - 1) / elapsed


# ---------------------------------------------------------------- consume


def raw_consume(count: int, prefetch: int) -> float:
    bodies = [outgoing(e, ORG, SERVICE).body for e in events(count)]
    with bench_vhost("raw-consume") as vhost:
        preload(vhost, bodies)
        connection = blocking(vhost)
        try:
            return consume_and_ack(connection, QUEUE, count, prefetch)
        finally:
            connection.close()


def our_consume(count: int, prefetch: int, workers: int) -> float:
    bodies = [outgoing(e, ORG, SERVICE).body for e in events(count)]
    with bench_vhost("consume") as vhost:
        preload(vhost, bodies)
        consumer = RabbitMqEventConsumer(
            RabbitMqConnector(url(vhost)), ORG, SERVICE, max_retries=0, prefetch=prefetch, workers=workers
        )
        consumer.consume(SUBSCRIBERS)
        start = time.perf_counter()
        consumer.start()
        wait_until(lambda: consumer.handled_count >= count, timeout=300)
        elapsed = time.perf_counter() - start
        consumer.stop()
        if queue_depth(vhost, QUEUE) != 0:
            raise RuntimeError("our consumer left messages behind")
    return count / elapsed


def petisco_consume(count: int, prefetch: int | None) -> float:
    """`prefetch=None`: petisco's own default, 1."""
    with bench_vhost("petisco-consume") as vhost:
        connector = _petisco(vhost)
        connector.prefetch_count = 1 if prefetch is None else prefetch
        from petisco import MessageSubscriber
        from petisco.extra.rabbitmq import RabbitMqMessageConsumer

        cls = _petisco_event_class()
        preload(vhost, [cls(user_id=str(i)).format_json().encode() for i in range(count)])
        handled = 0
        lock = threading.Lock()

        class NoopSubscriber(MessageSubscriber):
            def subscribed_to(self) -> list[type[Any]]:
                return [cls]

            def handle(self, message: Any) -> Any:
                nonlocal handled
                with lock:
                    handled += 1
                return isSuccess

        consumer = RabbitMqMessageConsumer(ORG, SERVICE, 0, connector)
        consumer.add_subscriber_on_queue(QUEUE, NoopSubscriber, message_type_expected="domain_event")
        start = time.perf_counter()
        consumer.start()
        wait_until(lambda: handled >= count, timeout=300)
        elapsed = time.perf_counter() - start
        consumer.stop()
        connector.close_all()
    return count / elapsed


# ---------------------------------------------------------------- report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks runtime", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000, help="messages per measurement (default 20000)")
    parser.add_argument("--petisco-count", type=int, default=3_000, help="messages for petisco (rate extrapolated)")
    parser.add_argument("--prefetch", type=int, default=100)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the best rate of each is kept (default 3)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    n, pn = args.count, args.petisco_count
    print(
        f"runtime benchmark: {n} messages, petisco {pn} (rate extrapolated), prefetch {args.prefetch}, "
        f"best of {args.rounds} rounds",
        flush=True,
    )
    steps: list[tuple[str, Callable[[], float]]] = [
        ("raw pika publish (persistent, no confirms)", lambda: raw_publish(n)),
        ("bus_runtime publish (persistent, confirmed batch)", lambda: our_publish(n)),
        ("petisco 2.2.3 publish (one event per call)", lambda: petisco_publish(pn)),
        (f"raw pika consume+ack (prefetch {args.prefetch})", lambda: raw_consume(n, args.prefetch)),
        (
            f"bus_runtime consume, no-op handler (prefetch {args.prefetch})",
            lambda: our_consume(n, args.prefetch, args.workers),
        ),
        ("petisco 2.2.3 consume, no-op handler (its default prefetch 1)", lambda: petisco_consume(pn, None)),
        (
            f"petisco 2.2.3 consume, no-op handler (prefetch {args.prefetch})",
            lambda: petisco_consume(pn, args.prefetch),
        ),
    ]
    # Rounds interleave the measurements, so that load from other processes hits all alike;
    # the best rate of each is its figure (the least disturbed run).
    rates = best_of(steps, args.rounds, 64)
    raw_pub, our_pub, pet_pub, raw_con, our_con, pet_con, pet_con_same = rates.values()
    checks = [
        ("publish vs raw pika", our_pub / raw_pub, 0.5),
        ("publish vs petisco", our_pub / pet_pub, 10.0),
        ("consume vs raw pika", our_con / raw_con, 0.5),
        ("consume vs petisco", our_con / pet_con, 5.0),
    ]
    print(f"ratios (consume vs petisco at prefetch {args.prefetch} too: {our_con / pet_con_same:.2f}x, informative):")
    return 0 if judged(checks, 22) else 1


if __name__ == "__main__":
    sys.exit(main())
