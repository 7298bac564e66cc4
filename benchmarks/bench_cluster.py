"""Cluster benchmark: the runtime on a quorum queue of the local three-node cluster.

In one run, each measurement in a vhost of its own on the cluster (deleted afterwards):

1. raw pika publish of N bodies to the quorum queue, persistent, no confirms, timed until the
   queue holds all N (a quorum queue holds a message once a majority wrote it)
2. `RabbitMqEventBus.publish(batch)` of N events, every one confirmed, all three nodes in its URL
3. raw pika consume + ack of N messages at the same prefetch
4. `RabbitMqEventConsumer` with a no-op handler at the same prefetch
5. failover: a consumer connected to one node while events trickle in; kill -9 that node and
   time until the first event is handled on the consumer's new connection (the node comes back
   afterwards: `scripts/rabbitmq-cluster up`)
6. publisher failover: a bus connected to the quorum queue leader's node publishes batches back
   to back; kill -9 that node mid-batch and time until the first batch begun after the kill is
   confirmed (target: under 2 s on a quiet machine)

Targets: publish and consume >= 0.5x raw pika, as on a single node.
Run: `python -m benchmarks cluster` (part of `make bench`). Without the cluster it prints
that it skipped and exits 0; `--up` brings the cluster up first.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pika
import requests
from meiga import isSuccess

from benchmarks.bench_runtime import confirmed_publish_seconds
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
from topology.spec.model import Defaults

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "rabbitmq-cluster"
HOST, USER, PASSWORD = "127.0.0.1", "guest", "guest"
NODES = ((1, 5681, 15681), (2, 5682, 15682), (3, 5683, 15683))  # rf1-rf3@localhost: AMQP, management
ORG, SERVICE = "bench", "cluster"


class UserCreated(Event):
    user_id: str


class Counter:
    """A no-op handler that counts and time-stamps what it handled."""

    def __init__(self) -> None:
        self.count = 0
        self.last = 0.0
        self._lock = threading.Lock()

    def handler(self, _event: UserCreated) -> Any:
        with self._lock:
            self.count += 1
            self.last = time.monotonic()
        return isSuccess


def noop_handler(_event: UserCreated) -> Any:
    return isSuccess


SUBSCRIBERS = [EventSubscriber(UserCreated, [noop_handler])]
QUEUE = f"{ORG}.{SERVICE}.1.event.user.created.noop_handler"
ROUTING_KEY = f"{ORG}.{SERVICE}.1.event.user.created"
EXCHANGE = f"{ORG}.{SERVICE}"


# ---------------------------------------------------------------- the cluster


def cluster_running() -> bool:
    """All three nodes report running, as rf1's management API sees them."""
    try:
        response = requests.get(f"http://{HOST}:{NODES[0][2]}/api/nodes", auth=(USER, PASSWORD), timeout=5)
        return response.ok and sum(1 for n in response.json() if n.get("running")) == len(NODES)
    except requests.RequestException:
        return False


def cluster_up() -> None:
    subprocess.run([str(SCRIPT), "up"], check=True, capture_output=True, timeout=300)


def beam_pid(index: int) -> int:
    """The Erlang VM of node rf<index> (scripts/rabbitmq-cluster marks it `-rabbitform_node`)."""
    marker = f"rf{index}@localhost".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            args = (proc / "cmdline").read_bytes().split(b"\0")
            if args[0].endswith(b"beam.smp") and b"-rabbitform_node" in args and marker in args:
                return int(proc.name)
    raise RuntimeError(f"rf{index}@localhost is not running")


def url(vhost: str, port: int) -> str:
    return f"amqp://{USER}:{PASSWORD}@{HOST}:{port}/{quote(vhost, safe='')}"


def urls(vhost: str, first: int = 1) -> str:
    """Every node's URL, node `first` first."""
    ordered = sorted(NODES, key=lambda node: node[0] != first)
    return ",".join(url(vhost, port) for _, port, _ in ordered)


@contextlib.contextmanager
def bench_vhost(label: str, handler: Callable[[UserCreated], Any] = noop_handler) -> Iterator[str]:
    """A fresh vhost on the cluster with the quorum topology of one subscriber."""
    client = ManagementClient.from_env(f"http://{HOST}:{NODES[0][2]}")
    try:
        with scratch_vhost(client, label, create=True) as name:
            spec = spec_for_subscribers(ORG, SERVICE, [EventSubscriber(UserCreated, [handler])], vhost=name)
            spec = spec.model_copy(update={"defaults": Defaults(queue_type="quorum", retry=spec.defaults.retry)})
            client.post("definitions", name, body=to_definitions(compile_spec(spec), include_vhost=False))
            yield name
    finally:
        client.close()


def blocking(vhost: str) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(url(vhost, NODES[0][1])))


def queue_depth(vhost: str) -> int:
    connection = blocking(vhost)
    try:
        return int(connection.channel().queue_declare(QUEUE, passive=True).method.message_count)
    finally:
        connection.close()


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.002) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("benchmark timed out")
        time.sleep(interval)


def bodies(count: int) -> list[bytes]:
    return [outgoing(UserCreated(user_id=str(i)), ORG, SERVICE).body for i in range(count)]


# ---------------------------------------------------------------- measurements


def raw_publish(count: int) -> float:
    payloads = bodies(count)
    with bench_vhost("raw-publish") as vhost:
        connection = blocking(vhost)
        channel = connection.channel()
        properties = pika.BasicProperties(delivery_mode=2, content_type="application/json")
        start = time.perf_counter()
        for body in payloads:
            channel.basic_publish(EXCHANGE, ROUTING_KEY, body, properties)
        wait_until(lambda: queue_depth(vhost) >= count, 120, interval=0.01)
        elapsed = time.perf_counter() - start
        connection.close()
    return count / elapsed


def our_publish(count: int) -> float:
    batch: list[Event] = [UserCreated(user_id=str(i)) for i in range(count)]
    with bench_vhost("publish") as vhost:
        elapsed = confirmed_publish_seconds(RabbitMqConnector(urls(vhost)), ORG, SERVICE, batch)
    return (count - 1) / elapsed


def preload(vhost: str, count: int) -> None:
    connection = blocking(vhost)
    channel = connection.channel()
    channel.confirm_delivery()
    properties = pika.BasicProperties(delivery_mode=2, content_type="application/json")
    for body in bodies(count):
        channel.basic_publish(EXCHANGE, ROUTING_KEY, body, properties)
    connection.close()
    wait_until(lambda: queue_depth(vhost) >= count, 120, interval=0.05)


def raw_consume(count: int, prefetch: int) -> float:
    with bench_vhost("raw-consume") as vhost:
        preload(vhost, count)
        connection = blocking(vhost)
        try:
            return consume_and_ack(connection, QUEUE, count, prefetch)
        finally:
            connection.close()


def our_consume(count: int, prefetch: int) -> float:
    with bench_vhost("consume") as vhost:
        preload(vhost, count)
        consumer = RabbitMqEventConsumer(RabbitMqConnector(urls(vhost)), ORG, SERVICE, max_retries=0, prefetch=prefetch)
        consumer.consume(SUBSCRIBERS)
        start = time.perf_counter()
        consumer.start()
        wait_until(lambda: consumer.handled_count >= count, timeout=300)
        elapsed = time.perf_counter() - start
        consumer.stop()
    return count / elapsed


def failover(node: int = 2) -> float:
    """Seconds from kill -9 of the consumer's node to the first event handled after it."""
    counter = Counter()
    with bench_vhost("failover", counter.handler) as vhost:
        subscribers = [EventSubscriber(UserCreated, [counter.handler])]
        consumer = RabbitMqEventConsumer(RabbitMqConnector(urls(vhost, first=node)), ORG, SERVICE, max_retries=0)
        consumer.consume(subscribers)
        consumer.start()
        bus = RabbitMqEventBus(RabbitMqConnector(urls(vhost, first=1 if node != 1 else 3)), ORG, SERVICE)
        stop = threading.Event()

        def trickle() -> None:
            n = 0
            while not stop.is_set():
                bus.publish(UserCreated(user_id=str(n)))
                n += 1
                time.sleep(0.005)

        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        try:
            wait_until(lambda: counter.count > 50, 30)
            os.kill(beam_pid(node), signal.SIGKILL)
            killed_at = time.monotonic()
            wait_until(lambda: consumer.reconnect_count >= 1 and counter.last > killed_at, 60)
            recovered = counter.last - killed_at
        finally:
            stop.set()
            thread.join(10)
            bus.close()
            consumer.stop()
            cluster_up()
    return recovered


def quorum_leader(vhost: str) -> int:
    """The index (1-3) of the node leading the subscriber's quorum queue."""

    def leader() -> str | None:
        response = requests.get(
            f"http://{HOST}:{NODES[0][2]}/api/queues/{quote(vhost, safe='')}/{quote(QUEUE, safe='')}",
            auth=(USER, PASSWORD),
            timeout=5,
        )
        return response.json().get("leader") if response.ok else None

    wait_until(lambda: bool(leader()), 30, interval=0.2)
    return int(str(leader()).split("@", 1)[0].removeprefix("rf"))


def publisher_failover(batch: int = 20) -> float:
    """Seconds from kill -9 of the publisher's node (also the queue's leader) to the first
    confirmed publish of a batch begun after the kill."""
    with bench_vhost("publisher-failover") as vhost:
        node = quorum_leader(vhost)
        bus = RabbitMqEventBus(RabbitMqConnector(urls(vhost, first=node)), ORG, SERVICE)
        stop = threading.Event()
        confirmed: list[tuple[float, float]] = []  # (began, confirmed) of each batch

        def publish() -> None:
            n = 0
            while not stop.is_set():
                began = time.monotonic()
                with contextlib.suppress(Exception):  # a failed batch just does not count
                    bus.publish([UserCreated(user_id=str(n + i)) for i in range(batch)])
                    confirmed.append((began, time.monotonic()))
                n += batch

        thread = threading.Thread(target=publish, daemon=True)
        thread.start()
        try:
            wait_until(lambda: len(confirmed) > 20, 30)
            os.kill(beam_pid(node), signal.SIGKILL)
            killed_at = time.monotonic()
            wait_until(lambda: any(began >= killed_at for began, _ in confirmed), 60, interval=0.01)
            recovered = min(end for began, end in confirmed if began >= killed_at) - killed_at
        finally:
            stop.set()
            thread.join(40)
            bus.close()
            cluster_up()
    return recovered


# ---------------------------------------------------------------- report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks cluster", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5_000, help="messages per measurement (default 5000)")
    parser.add_argument("--prefetch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2, help="rounds; the best rate of each is kept (default 2)")
    parser.add_argument("--up", action="store_true", help="bring the cluster up first (scripts/rabbitmq-cluster up)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)
    if args.up:
        cluster_up()
    if not cluster_running():
        print("cluster benchmark skipped: the three-node cluster is not up (`make cluster`, or pass --up)")
        return 0
    n = args.count
    print(f"cluster benchmark: quorum queue on 3 nodes, {n} messages, prefetch {args.prefetch}, best of {args.rounds}")
    steps: list[tuple[str, Callable[[], float]]] = [
        ("raw pika publish (persistent, no confirms, until queued)", lambda: raw_publish(n)),
        ("bus_runtime publish (persistent, confirmed batch)", lambda: our_publish(n)),
        (f"raw pika consume+ack (prefetch {args.prefetch})", lambda: raw_consume(n, args.prefetch)),
        (f"bus_runtime consume, no-op handler (prefetch {args.prefetch})", lambda: our_consume(n, args.prefetch)),
    ]
    rates = best_of(steps, args.rounds, 64)
    recovered = failover()
    print(f"  failover: first event handled {recovered:.2f} s after kill -9 of the consumer's node", flush=True)
    published = publisher_failover()
    print(
        f"  publisher failover: first confirmed publish {published:.2f} s after kill -9 of the publisher's node "
        "(also the queue leader)",
        flush=True,
    )
    raw_pub, our_pub, raw_con, our_con = rates.values()
    checks = [("publish vs raw pika", our_pub / raw_pub, 0.5), ("consume vs raw pika", our_con / raw_con, 0.5)]
    return 0 if judged(checks, 22) else 1


if __name__ == "__main__":
    sys.exit(main())
