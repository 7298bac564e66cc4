"""Replay benchmark: `rabbitform dlq replay` against raw pika moving the same messages between
the same two queues (a subscriber's dead-letter queue -> its queue), in one run.

Baselines (raw pika `BlockingConnection`, the way one writes it by hand), the faster is the bar:
1. basic_get + basic_publish with a confirm + basic_ack, one message at a time
2. basic_consume (prefetch 200) + basic_publish with a confirm + basic_ack
Ours: `DeadLetterQueues.replay` (the library behind `rabbitform dlq replay`): every copy
confirmed before its dead letter is acked, with a fresh retry budget and replay headers.

Target (issue 12): replay >= 0.5x the faster baseline. Each round refills the dead-letter queue
with N messages in a vhost of our own (deleted afterwards); best of the rounds.
Run: `python -m benchmarks replay` (or `make bench`). Needs the broker on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from urllib.parse import quote

import pika
import pika.exceptions
from meiga import isSuccess

from benchmarks.raw_pika import declare_topology
from benchmarks.scratch import scratch_vhost
from bus_runtime import retry
from bus_runtime.connector import RabbitMqConnector
from bus_runtime.deadletters import DeadLetterQueues
from bus_runtime.message import Event
from bus_runtime.subscriber import EventSubscriber
from bus_runtime.subscriber_spec import spec_for_subscribers
from topology.broker.management import ManagementClient
from topology.compile.compiler import compile_spec
from topology.spec.model import Spec

HOST = os.environ.get("RABBITMQ_HOST", "127.0.0.1")
PORT = int(os.environ.get("RABBITMQ_PORT", "5672"))
USER = os.environ.get("RABBITMQ_USER", "guest")
PASSWORD = os.environ.get("RABBITMQ_PASSWORD", "guest")
MANAGEMENT = os.environ.get("RABBITMQ_MANAGEMENT_URL", "http://127.0.0.1:15672").rstrip("/")
ORG, SERVICE = "bench", "replay"
TARGET = 0.5


class UserCreated(Event):
    user_id: str


def send_mail_handler(_event: UserCreated) -> object:
    return isSuccess


QUEUE = f"{ORG}.{SERVICE}.1.event.user.created.send_mail_handler"
DEAD = f"dead_letter.{QUEUE}"


def amqp_url(vhost: str) -> str:
    return f"amqp://{USER}:{PASSWORD}@{HOST}:{PORT}/{quote(vhost, safe='')}"


@contextlib.contextmanager
def declared_vhost(label: str, spec_of: Callable[[str], Spec]) -> Iterator[tuple[str, Spec]]:
    """A fresh vhost holding `spec_of(vhost)`'s topology, declared over AMQP; deleted afterwards."""
    client = ManagementClient.from_env(MANAGEMENT)
    try:
        with scratch_vhost(client, label, create=True) as name:
            spec = spec_of(name)
            connection = connect_when_up(name)
            declare_topology(connection.channel(), compile_spec(spec))
            connection.close()
            yield name, spec
    finally:
        client.close()


def bench_vhost() -> contextlib.AbstractContextManager[tuple[str, Spec]]:
    """A fresh vhost with one subscriber's topology."""
    return declared_vhost(
        "replay",
        lambda name: spec_for_subscribers(
            ORG, SERVICE, [EventSubscriber(UserCreated, [send_mail_handler])], vhost=name
        ),
    )


def connect_when_up(vhost: str, timeout: float = 60.0) -> pika.BlockingConnection:
    """A new vhost starts asynchronously: a busy broker refuses connections ("vhost is down") for a moment."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return pika.BlockingConnection(pika.URLParameters(amqp_url(vhost)))
        except pika.exceptions.ProbableAccessDeniedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def body(n: int) -> bytes:
    return (
        f'{{"data":{{"id":"{n:08d}","type":"user.created","type_message":"domain_event","version":1,'
        f'"occurred_on":"2026-11-27 10:00:00.000000","attributes":{{"user_id":"{n:08d}"}},"meta":{{}}}}}}'
    ).encode()


def fill(channel: pika.adapters.blocking_connection.BlockingChannel, count: int) -> None:
    """`count` dead letters as the consumer leaves them, in the dead-letter queue; the
    subscriber's queue empty."""
    channel.queue_purge(QUEUE)
    channel.queue_purge(DEAD)
    stamp = datetime.now(timezone.utc).isoformat()
    for n in range(count):
        headers = {
            retry.RETRY_COUNT: 5,
            retry.ERROR_TYPE: "SmtpDown",
            retry.ERROR_MESSAGE: "smtp down",
            retry.DEAD_LETTER_REASON: retry.REASON_RETRIES_EXHAUSTED,
            retry.LAST_FAILURE_AT: stamp,
        }
        props = pika.BasicProperties(delivery_mode=2, message_id=str(n), type="user.created", headers=headers)
        channel.basic_publish("", DEAD, body(n), props)
    deadline = time.monotonic() + 60
    while channel.queue_declare(DEAD, passive=True).method.message_count < count:
        if time.monotonic() > deadline:
            raise RuntimeError("the dead-letter queue did not fill within 60 s")
        channel.connection.sleep(0.05)


def check_moved(channel: pika.adapters.blocking_connection.BlockingChannel, count: int) -> None:
    moved = channel.queue_declare(QUEUE, passive=True).method.message_count
    left = channel.queue_declare(DEAD, passive=True).method.message_count
    if moved != count or left != 0:
        raise RuntimeError(f"expected {count} moved and 0 left, got {moved} moved and {left} left")


def raw_get(channel: pika.adapters.blocking_connection.BlockingChannel, count: int) -> None:
    for _ in range(count):
        method, properties, body = channel.basic_get(DEAD, auto_ack=False)
        if method is None:
            raise RuntimeError("basic_get found the queue empty early")
        channel.basic_publish("", QUEUE, body, properties, mandatory=True)
        channel.basic_ack(method.delivery_tag)


def raw_consume(channel: pika.adapters.blocking_connection.BlockingChannel, count: int) -> None:
    channel.basic_qos(prefetch_count=200)
    for n, (method, properties, body) in enumerate(channel.consume(DEAD, auto_ack=False), start=1):
        channel.basic_publish("", QUEUE, body, properties, mandatory=True)
        channel.basic_ack(method.delivery_tag)
        if n >= count:
            break
    channel.cancel()


def measure(vhost: str, spec: Spec, count: int, label: str) -> float:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url(vhost)))
    try:
        setup = connection.channel()
        fill(setup, count)
        if label == "ours":
            with DeadLetterQueues.connect(spec, RabbitMqConnector(amqp_url(vhost))) as dlq:
                start = time.perf_counter()
                outcome = dlq.replay("send_mail_handler")
                elapsed = time.perf_counter() - start
            if outcome.count != count:
                raise RuntimeError(f"replayed {outcome.count} of {count}")
        else:
            channel = connection.channel()
            channel.confirm_delivery()
            start = time.perf_counter()
            (raw_get if label == "get" else raw_consume)(channel, count)
            elapsed = time.perf_counter() - start
            channel.close()
        check_moved(setup, count)
        return count / elapsed
    finally:
        connection.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks replay", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5_000, help="dead letters per measurement (default 5000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the best rate of each is kept (default 3)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("pika").setLevel(logging.CRITICAL)  # retried connection attempts are not news
    n = args.count
    print(
        f"replay benchmark: {n} dead letters per run ({len(body(0))}-byte bodies, 5 rabbitform headers), "
        f"best of {args.rounds} rounds",
        flush=True,
    )
    steps: list[tuple[str, str]] = [
        ("get", "raw pika basic_get + publish with confirm + ack"),
        ("consume", "raw pika consume (prefetch 200) + publish with confirm + ack"),
        ("ours", "rabbitform dlq replay (DeadLetterQueues.replay)"),
    ]
    samples: dict[str, list[float]] = {key: [] for key, _ in steps}
    with bench_vhost() as (vhost, spec):
        for _ in range(max(1, args.rounds)):  # interleaved: load from other processes hits all alike
            for key, _label in steps:
                samples[key].append(measure(vhost, spec, n, key))
    rates = {key: max(values) for key, values in samples.items()}
    for key, label in steps:
        runs = ", ".join(f"{value:,.0f}" for value in samples[key])
        print(f"  {label:<62} {rates[key]:>9,.0f} msg/s  (runs: {runs})", flush=True)
    baseline = max(rates["get"], rates["consume"])
    ratio = rates["ours"] / baseline
    verdict = "met" if ratio >= TARGET else "MISSED"
    print("result:")
    print(f"  replay vs the faster raw pika baseline   {ratio:5.2f}x  (target >= {TARGET}x: {verdict})")
    return 0 if ratio >= TARGET else 1
