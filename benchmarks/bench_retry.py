"""Retry-ladder benchmark: punctuality of the tiers, and healthy traffic while 10% fails.

1. Punctuality: N messages (default 10,000) enter a three-tier ladder (5 s, 10 s, 20 s; a
   third in each tier, as retry k of a message lands there) over 5 s, so that all N wait at
   once when the first tier starts expiring; the consumer (`RabbitMqEventConsumer`, the handler
   succeeds) takes them as the tiers expire them. Each message carries the time it is due (the
   moment it entered its tier plus the tier's TTL); lateness = when its handler ran - when it
   was due. Target (issue 20): p99 < 250 ms on a quiet machine.
2. Healthy traffic: M messages (default 20,000) wait in a subscriber's queue; the consumer
   takes them once with a handler that always succeeds (the baseline), once with one that fails
   the first attempt of every tenth message, which goes through the ladder. Compared: healthy
   messages handled per second, from start to the last healthy one, in the same run. Target
   >= 0.9x. Best of the rounds.

Run: `python -m benchmarks retry [--messages N] [--traffic M] [--rounds R]`. Needs the broker
on 127.0.0.1; each part works in a vhost of its own, deleted afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import statistics
import threading
import time
from collections.abc import Sequence
from typing import Any

import pika
from meiga import Error, Failure, isSuccess

from benchmarks.bench_replay import amqp_url, connect_when_up, declared_vhost
from bus_runtime import retry
from bus_runtime.connector import RabbitMqConnector
from bus_runtime.consumer import RabbitMqEventConsumer
from bus_runtime.message import Event
from bus_runtime.spec_runtime import with_retry_policy
from bus_runtime.subscriber import Subscription
from bus_runtime.wire import encode
from topology import naming
from topology.spec.loader import parse_spec
from topology.spec.model import Spec

ORG, SERVICE = "bench", "retry"
LADDER_MS = (1000, 2000, 4000)  # healthy traffic: where the failing tenth waits
PUNCTUALITY_LADDER_MS = (5000, 10000, 20000)
FILL_SECONDS = 5.0  # the punctuality messages enter the ladder over this long
QUEUE = f"{ORG}.{SERVICE}.1.event.user.created.send_mail_handler"
PUNCTUALITY_TARGET_MS = 250.0
TRAFFIC_TARGET = 0.9


class UserCreated(Event):
    n: int
    due: float = 0.0  # epoch seconds when this retry is due back (punctuality)


class Down(Error):
    def __init__(self) -> None:
        self.message = "dependency down"


def spec_text(vhost: str, ladder_ms: Sequence[int]) -> str:
    ladder = ", ".join(str(d) for d in ladder_ms)
    return (
        f"organization: {ORG}\nvhost: {vhost}\n"
        "services:\n  retry:\n    events:\n      UserCreated:\n        subscribers:\n"
        f"          send_mail_handler: {{retry: {{delays_ms: [{ladder}], max_retries: 3}}}}\n"
    )


def bench_vhost(
    label: str, ladder_ms: Sequence[int] = LADDER_MS
) -> contextlib.AbstractContextManager[tuple[str, Spec]]:
    """A fresh vhost holding the ladder's topology."""
    return declared_vhost(label, lambda name: parse_spec(spec_text(name, ladder_ms)))


def consumer_for(vhost: str, spec: Spec, handler: Any) -> RabbitMqEventConsumer:
    resolved = next(spec.subscribers())
    sub = with_retry_policy(
        Subscription(ORG, SERVICE, QUEUE, handler, "send_mail_handler", UserCreated, resolved.retry.max_retries),
        resolved.retry,
        None,
    )
    consumer = RabbitMqEventConsumer(RabbitMqConnector(amqp_url(vhost)), ORG, SERVICE, prefetch=200)
    consumer.add_subscriptions([sub])
    return consumer


def wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.01)


# -- 1. punctuality ------------------------------------------------------------------------


def punctuality(count: int) -> list[float]:
    """Lateness (ms) of each of `count` messages that wait in the three tiers at once."""
    arrived: list[float] = []
    lock = threading.Lock()

    def send_mail_handler(event: UserCreated) -> Any:
        now = time.time()
        with lock:
            arrived.append((now - event.due) * 1000)
        return isSuccess

    ladder = PUNCTUALITY_LADDER_MS
    with bench_vhost("retry-punctuality", ladder) as (vhost, spec):
        consumer = consumer_for(vhost, spec, send_mail_handler)
        consumer.start()
        try:
            connection = connect_when_up(vhost)
            channel = connection.channel()
            exchange = naming.retry_exchange(ORG, SERVICE)
            start = time.monotonic()
            for n in range(count):
                ahead = start + n * FILL_SECONDS / count - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
                tier = n % len(ladder) + 1
                message = UserCreated(n=n, due=time.time() + ladder[tier - 1] / 1000)
                wire = encode(message, ORG, SERVICE, {retry.RETRY_COUNT: tier})
                props = pika.BasicProperties(
                    delivery_mode=2, message_id=wire.message_id, type=wire.type, headers=dict(wire.headers)
                )
                channel.basic_publish(exchange, naming.retry_tier_queue(QUEUE, tier), wire.body, props)
            waiting = sum(
                channel.queue_declare(name, passive=True).method.message_count
                for name in naming.retry_tier_queues(QUEUE, len(ladder))
            )
            connection.close()
            wait(lambda: len(arrived) >= count, 120 + max(ladder) / 1000, f"{count} retries back")
        finally:
            consumer.stop()
    print(f"punctuality: {waiting} of {count} messages waiting in the ladder when the last one entered it")
    return arrived


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


# -- 2. healthy traffic --------------------------------------------------------------------


def traffic(count: int, failing_share: int | None) -> tuple[float, float]:
    """(healthy messages handled per second, this process's CPU seconds per 1,000 healthy
    messages); every `failing_share`-th message fails its first attempt. CPU time is quoted
    too: on a shared machine it moves less than wall-clock throughput."""
    healthy = 0
    done = threading.Event()
    lock = threading.Lock()
    expected = count if failing_share is None else count - len(range(0, count, failing_share))
    seen_failures: set[int] = set()

    def send_mail_handler(event: UserCreated) -> Any:
        nonlocal healthy
        if failing_share is not None and event.n % failing_share == 0:
            with lock:
                if event.n not in seen_failures:
                    seen_failures.add(event.n)
                    return Failure(Down())
            return isSuccess
        with lock:
            healthy += 1
            if healthy == expected:
                done.set()
        return isSuccess

    with bench_vhost("retry-traffic") as (vhost, spec):
        connection = connect_when_up(vhost)
        channel = connection.channel()
        for n in range(count):
            wire = encode(UserCreated(n=n), ORG, SERVICE)
            props = pika.BasicProperties(delivery_mode=2, message_id=wire.message_id, type=wire.type)
            channel.basic_publish("", QUEUE, wire.body, props)
        wait(lambda: channel.queue_declare(QUEUE, passive=True).method.message_count >= count, 60, "the backlog")
        connection.close()
        consumer = consumer_for(vhost, spec, send_mail_handler)
        start, cpu = time.perf_counter(), time.process_time()
        consumer.start()
        try:
            if not done.wait(300):
                raise RuntimeError(f"only {healthy} of {expected} healthy messages handled in 300 s")
            elapsed, used = time.perf_counter() - start, time.process_time() - cpu
        finally:
            consumer.stop()
    return expected / elapsed, used / expected * 1000


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks retry", description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000, help="messages waiting in the ladder (punctuality)")
    parser.add_argument("--traffic", type=int, default=20_000, help="messages in the backlog (healthy traffic)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    logging.getLogger("bus_runtime").setLevel(logging.CRITICAL)

    late = punctuality(args.messages)
    p50, p99, worst = percentile(late, 50), percentile(late, 99), max(late)
    ok_punctual = p99 < PUNCTUALITY_TARGET_MS
    print(
        f"punctuality: {args.messages} messages in a three-tier ladder {list(PUNCTUALITY_LADDER_MS)} ms: "
        f"lateness p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {worst:.0f} ms, mean {statistics.fmean(late):.0f} ms "
        f"(target p99 < {PUNCTUALITY_TARGET_MS:.0f} ms: {'ok' if ok_punctual else 'MISSED'})"
    )
    base: list[tuple[float, float]] = []
    failing: list[tuple[float, float]] = []
    for _ in range(args.rounds):
        base.append(traffic(args.traffic, None))
        failing.append(traffic(args.traffic, 10))
    best_base, best_failing = max(base), max(failing)
    ratio = best_failing[0] / best_base[0]
    cpu_ratio = min(c for _, c in base) / min(c for _, c in failing)
    ok_traffic = ratio >= TRAFFIC_TARGET
    print(
        f"healthy traffic: {args.traffic} messages, best of {args.rounds}: no failures {best_base[0]:.0f} msg/s, "
        f"10% failing through the ladder {best_failing[0]:.0f} healthy msg/s: {ratio:.2f}x "
        f"(target >= {TRAFFIC_TARGET}x: {'ok' if ok_traffic else 'MISSED'}); consumer CPU per 1,000 healthy "
        f"messages {min(c for _, c in base):.3f} s vs {min(c for _, c in failing):.3f} s: {cpu_ratio:.2f}x"
    )
    print(f"load average during the run: {' '.join(f'{v:.1f}' for v in os.getloadavg())} (2 cores, shared)")
    return 0 if ok_punctual and ok_traffic else 1
