"""asyncio benchmark: `bus_runtime.aio` against the threaded runtime and FastStream, same run.

Six measurements, each in a vhost of its own with the same topology (deleted afterwards):

1. `RabbitMqEventBus.publish(batch)` (threaded, confirmed): the baseline
2. `await AsyncRabbitMqEventBus.publish(batch)` (confirmed)
3. FastStream `RabbitBroker.publish` with publisher confirms (its default), awaited in concurrent
   windows of 500 (faster than one await per message; both are printed, the faster is compared)
4. `RabbitMqEventConsumer`, no-op handler (threaded): the baseline
5. `AsyncRabbitMqEventConsumer`, `async def` no-op handler
6. FastStream `@broker.subscriber`, `async def` no-op handler, same prefetch, ack after handling

Targets (issue 14): asyncio publish and consume >= 0.8x of the threaded ones, and ahead of FastStream.
Run: `python -m benchmarks aio` (FastStream comes from the `bench` extra: `pip install -e '.[bench]'`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from meiga import isSuccess

from benchmarks.bench_runtime import (
    EXCHANGE,
    ORG,
    QUEUE,
    ROUTING_KEY,
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
)
from benchmarks.rounds import best_of, judged
from bus_runtime.aio import AsyncRabbitMqEventBus, AsyncRabbitMqEventConsumer
from bus_runtime.bus import outgoing
from bus_runtime.connector import RabbitMqConnector
from bus_runtime.subscriber import EventSubscriber

WINDOW = 500


async def noop_handler(_event: UserCreated) -> Any:
    return isSuccess


def async_publish(count: int) -> float:
    batch = events(count)

    async def run(vhost: str) -> float:
        async with AsyncRabbitMqEventBus(RabbitMqConnector(url(vhost)), ORG, SERVICE, timeout=120) as bus:
            await bus.publish(batch[:1])
            start = time.perf_counter()
            await bus.publish(batch[1:])
            return time.perf_counter() - start

    with bench_vhost("aio-publish") as vhost:
        elapsed = asyncio.run(run(vhost))
        wait_depth(vhost, QUEUE, count)
    return (count - 1) / elapsed


def async_consume(count: int, prefetch: int) -> float:
    bodies = [outgoing(e, ORG, SERVICE).body for e in events(count)]

    async def run(vhost: str) -> float:
        consumer = AsyncRabbitMqEventConsumer(
            RabbitMqConnector(url(vhost)), ORG, SERVICE, max_retries=0, prefetch=prefetch
        )
        consumer.consume([EventSubscriber(UserCreated, [noop_handler])])
        start = time.perf_counter()
        await consumer.start()
        while consumer.handled_count < count:
            await asyncio.sleep(0.002)
        elapsed = time.perf_counter() - start
        await consumer.stop()
        return elapsed

    with bench_vhost("aio-consume") as vhost:
        preload(vhost, bodies)
        elapsed = asyncio.run(run(vhost))
        if queue_depth(vhost, QUEUE) != 0:
            raise RuntimeError("the async consumer left messages behind")
    return count / elapsed


def _faststream() -> Any:
    """The `faststream.rabbit` module, or None when the bench extra is not installed."""
    try:
        import faststream.rabbit
    except ImportError:
        return None
    return faststream.rabbit


def faststream_publish(count: int, window: int) -> float:
    fs = _faststream()
    bodies = [outgoing(e, ORG, SERVICE).body for e in events(count)]
    exchange = fs.RabbitExchange(EXCHANGE, type=fs.ExchangeType.TOPIC, declare=False)

    async def run(vhost: str) -> float:
        broker = fs.RabbitBroker(url(vhost), logger=None, default_channel=fs.Channel(publisher_confirms=True))
        await broker.connect()
        try:
            await broker.publish(bodies[0], exchange=exchange, routing_key=ROUTING_KEY, persist=True)
            start = time.perf_counter()
            for first in range(1, count, window):
                await asyncio.gather(
                    *(
                        broker.publish(body, exchange=exchange, routing_key=ROUTING_KEY, persist=True)
                        for body in bodies[first : first + window]
                    )
                )
            return time.perf_counter() - start
        finally:
            await broker.stop()

    with bench_vhost("faststream-publish") as vhost:
        elapsed = asyncio.run(run(vhost))
        wait_depth(vhost, QUEUE, count)
    return (count - 1) / elapsed


def faststream_consume(count: int, prefetch: int) -> float:
    fs = _faststream()
    bodies = [outgoing(e, ORG, SERVICE).body for e in events(count)]

    async def run(vhost: str) -> float:
        broker = fs.RabbitBroker(url(vhost), logger=None, default_channel=fs.Channel(prefetch_count=prefetch))
        handled = 0
        done = asyncio.Event()

        @broker.subscriber(fs.RabbitQueue(QUEUE, declare=False), fs.RabbitExchange(EXCHANGE, declare=False))
        async def handler(body: Any) -> None:
            nonlocal handled
            handled += 1
            if handled >= count:
                done.set()

        start = time.perf_counter()
        await broker.start()
        await asyncio.wait_for(done.wait(), 300)
        elapsed = time.perf_counter() - start
        await broker.stop()
        return elapsed

    with bench_vhost("faststream-consume") as vhost:
        preload(vhost, bodies)
        elapsed = asyncio.run(run(vhost))
    return count / elapsed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks aio", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000, help="messages per measurement (default 20000)")
    parser.add_argument("--prefetch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the best rate of each is kept (default 3)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    n = args.count
    has_faststream = _faststream() is not None
    print(f"asyncio benchmark: {n} messages, prefetch {args.prefetch}, best of {args.rounds} rounds", flush=True)
    steps: list[tuple[str, Callable[[], float]]] = [
        ("threaded publish (confirmed batch)", lambda: our_publish(n)),
        ("asyncio publish (confirmed batch)", lambda: async_publish(n)),
        ("threaded consume, no-op handler", lambda: our_consume(n, args.prefetch, 8)),
        ("asyncio consume, async no-op handler", lambda: async_consume(n, args.prefetch)),
    ]
    if has_faststream:
        steps += [
            (f"FastStream publish, confirms, {WINDOW} awaited at once", lambda: faststream_publish(n, WINDOW)),
            ("FastStream publish, confirms, one await per message", lambda: faststream_publish(n // 4, 1)),
            ("FastStream consume, async no-op handler", lambda: faststream_consume(n, args.prefetch)),
        ]
    else:
        print("FastStream is not installed (pip install -e '.[bench]'): its rows are skipped", flush=True)
    rates = best_of(steps, args.rounds, 56)
    values = list(rates.values())
    threaded_pub, async_pub, threaded_con, async_con = values[:4]
    checks = [
        ("asyncio publish vs threaded", async_pub / threaded_pub, 0.8),
        ("asyncio consume vs threaded", async_con / threaded_con, 0.8),
    ]
    if has_faststream:
        fs_pub = max(values[4], values[5])
        checks += [
            ("asyncio publish vs FastStream", async_pub / fs_pub, 1.0),
            ("asyncio consume vs FastStream", async_con / values[6], 1.0),
        ]
    print("ratios:")
    return 0 if judged(checks, 32) else 1


if __name__ == "__main__":
    sys.exit(main())
