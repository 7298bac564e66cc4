"""`python -m benchmarks move [--messages N] [--rounds R]`: how fast `--move-messages` moves a backlog.

Baseline, measured in the same run: raw pika consuming from one queue and publishing into
another with publisher confirms (asynchronous, a window of unconfirmed messages, each
original acked once its copy is confirmed), which is the fastest lossless way pika offers.
Measured: `topology.apply.move.drain_into` between the same two queues (it also reads the
destination first and checks ids for duplicates). Rounds alternate; best of each is kept.
"""

from __future__ import annotations

import argparse
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import pika
from pika.channel import Channel

from benchmarks.scratch import scratch_vhost
from topology.apply.move import amqp_parameters, drain_into, message_count
from topology.broker.management import ManagementClient

SOURCE, DESTINATION = "bench.move.source", "bench.move.destination"
WINDOW = 2000


def fill(params: pika.ConnectionParameters, queue: str, count: int, size: int) -> None:
    """`count` persistent messages of `size` bytes, each with a message id (as the runtime sends)."""
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    body = b"x" * size
    for index in range(count):
        properties = pika.BasicProperties(message_id=f"m-{index}", delivery_mode=2)
        channel.basic_publish("", queue, body, properties)
    connection.close()
    deadline = time.monotonic() + 120
    while (message_count(params, queue) or 0) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"the broker did not take {count} messages into {queue} within 120 s")
        time.sleep(0.1)


def raw_pika_move(params: pika.ConnectionParameters, source: str, destination: str, count: int) -> None:
    """The baseline: consume `count` messages, publish each with confirms, ack once confirmed."""
    state: dict[str, Any] = {"published": 0, "acked": 0}
    pending: deque[tuple[int, int]] = deque()

    def on_open(connection: pika.SelectConnection) -> None:
        connection.channel(on_open_callback=on_channel)

    def on_channel(channel: Channel) -> None:
        state["channel"] = channel
        channel.confirm_delivery(
            on_confirm,
            callback=lambda _f: channel.basic_qos(
                prefetch_count=WINDOW, callback=lambda _q: channel.basic_consume(source, on_message)
            ),
        )

    def on_message(channel: Channel, method: Any, properties: Any, body: bytes) -> None:
        channel.basic_publish("", destination, body, properties)
        state["published"] += 1
        pending.append((state["published"], method.delivery_tag))

    def on_confirm(frame: Any) -> None:
        confirmed = frame.method.delivery_tag
        last = None
        while pending and pending[0][0] <= confirmed:
            _, last = pending.popleft()
            state["acked"] += 1
        if last is not None:
            state["channel"].basic_ack(last, multiple=True)
        if state["acked"] >= count:
            state["connection"].close()

    def on_close(closed: pika.SelectConnection, _reason: Exception) -> None:
        closed.ioloop.stop()

    connection = pika.SelectConnection(params, on_open_callback=on_open, on_close_callback=on_close)
    state["connection"] = connection
    connection.ioloop.start()


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks move")
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--size", type=int, default=100, help="body size in bytes")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(list(argv))
    client = ManagementClient.from_env()
    with scratch_vhost(client, "move", create=True) as vhost:
        params = amqp_parameters(client, vhost)
        for queue in (SOURCE, DESTINATION):
            client.put("queues", vhost, queue, body={"durable": True, "auto_delete": False, "arguments": {}})
        fill(params, SOURCE, args.messages, args.size)
        best = {"raw pika": 0.0, "rabbitform move": 0.0}
        source, destination = SOURCE, DESTINATION
        for _ in range(args.rounds):
            for name in best:
                started = time.perf_counter()
                if name == "raw pika":
                    raw_pika_move(params, source, destination, args.messages)
                else:
                    drain_into(params, source, destination)
                rate = args.messages / (time.perf_counter() - started)
                best[name] = max(best[name], rate)
                print(f"  {name}: {rate:,.0f} msg/s", flush=True)
                source, destination = destination, source
        ratio = best["rabbitform move"] / best["raw pika"]
        print(
            f"move {args.messages:,} messages of {args.size} B (persistent, best of {args.rounds}): "
            f"raw pika consume+confirmed publish {best['raw pika']:,.0f} msg/s; "
            f"rabbitform move {best['rabbitform move']:,.0f} msg/s ({ratio:.2f}x)"
        )
    client.close()
    return 0
