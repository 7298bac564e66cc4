"""The raw pika baselines the benchmarks share, so that every ratio is against the same loop."""

from __future__ import annotations

import time
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel

from topology.compile.objects import Topology


def consume_and_ack(connection: pika.BlockingConnection, queue: str, count: int, prefetch: int) -> float:
    """Consume and ack `count` messages of `queue` at `prefetch`; returns the messages per second."""
    channel = connection.channel()
    channel.basic_qos(prefetch_count=prefetch)
    seen = 0

    def on_message(ch: Any, method: Any, _properties: Any, _body: bytes) -> None:
        nonlocal seen
        ch.basic_ack(method.delivery_tag)
        seen += 1
        if seen == count:
            ch.stop_consuming()

    channel.basic_consume(queue, on_message)
    start = time.perf_counter()
    channel.start_consuming()
    return count / (time.perf_counter() - start)


def declare_topology(channel: BlockingChannel, topology: Topology) -> None:
    """A compiled topology's exchanges, queues and bindings declared straight over AMQP: set-up
    for benchmarks and tests that are not about applying (the management API's definitions
    import can queue behind other imports on a shared broker)."""
    for exchange in topology.exchanges:
        channel.exchange_declare(exchange.name, exchange.type, durable=True)
    for queue in topology.queues:
        channel.queue_declare(queue.name, durable=True, arguments=dict(queue.arguments))
    for binding in topology.bindings:
        channel.queue_bind(binding.destination, binding.source, binding.routing_key)
