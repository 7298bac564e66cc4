"""The dead-letter transport on RabbitMQ: a blocking channel holds dead letters unacked
(unlimited prefetch, so nothing stalls behind the ones we keep), and `ConfirmedPublisher`
sends replayed copies through the default exchange, whose routing key is a queue name: the
copy reaches that queue alone. Closing the reading channel gives back what we held; a classic
or quorum queue puts requeued messages back ahead of newer ones, in their order.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from bus_runtime.connector import RabbitMqConnector
from bus_runtime.deadletters.ops import Raw
from bus_runtime.errors import BrokerRefused, BrokerUnavailable, BusError
from bus_runtime.iothread import describe_error
from bus_runtime.publisher import ConfirmedPublisher, Outgoing
from topology.amqp import classify_failure, queue_depth

DEFAULT_EXCHANGE = ""
IDLE_TIMEOUT = 5.0  # seconds without a delivery before a read stops short (someone else took them)


class AmqpTransport:
    """One connection for reading and acking, one confirmed publisher for copies."""

    def __init__(self, connector: RabbitMqConnector, idle_timeout: float = IDLE_TIMEOUT) -> None:
        self.connector = connector
        self.idle_timeout = idle_timeout
        try:
            self._connection = pika.BlockingConnection(connector.parameters("dead-letters"))
        except pika.exceptions.AMQPError as exc:
            raise BrokerUnavailable(
                f"cannot connect to {connector.safe_url}: {describe_error(exc)}", classify_failure(exc)
            ) from None
        self._channel: BlockingChannel | None = None
        self._held_queue = ""
        self._held: set[int] = set()
        self._publisher: ConfirmedPublisher | None = None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.release()
        if self._publisher is not None:
            self._publisher.close()
        with contextlib.suppress(Exception):
            self._connection.close()

    def __enter__(self) -> AmqpTransport:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def depth(self, queue: str) -> int:
        channel = self._connection.channel()
        try:
            depth = queue_depth(channel, queue)
        except pika.exceptions.ChannelClosedByBroker as exc:
            raise BrokerRefused(f"cannot read queue {queue}: {exc.reply_text}", exc.reply_code) from None
        finally:
            if channel.is_open:
                channel.close()
        if depth is None:
            raise BusError(f"queue {queue} does not exist on {self.connector.safe_url}: run `rabbitform apply`")
        return depth

    def hold(self, queue: str, count: int) -> Iterator[Raw]:
        if count <= 0:
            return
        self.release()
        channel = self._channel = self._connection.channel()
        self._held_queue = queue
        channel.basic_qos(prefetch_count=0)  # hold as many as we like unacked
        deliveries = channel.consume(queue, auto_ack=False, inactivity_timeout=self.idle_timeout)
        for seen, (method, properties, body) in enumerate(deliveries, start=1):
            if method is None:
                return  # dry: someone else took the rest
            self._held.add(method.delivery_tag)
            yield Raw(
                tag=method.delivery_tag,
                body=body,
                headers=dict(properties.headers or {}),
                message_id=properties.message_id,
                message_type=properties.type,
                routing_key=method.routing_key,
                handle=properties,
            )
            if seen >= count:
                return

    def republish(self, queue: str, items: list[tuple[Raw, dict[str, Any]]]) -> None:
        if self._publisher is None:
            self._publisher = ConfirmedPublisher(self.connector, purpose="dead-letter-replay", on_unroutable="raise")
        outgoing = []
        for raw, headers in items:
            properties: pika.BasicProperties = raw.handle
            copy = pika.BasicProperties(
                content_type=properties.content_type,
                content_encoding=properties.content_encoding,
                headers=headers,
                delivery_mode=2,
                priority=properties.priority,
                correlation_id=properties.correlation_id,
                message_id=properties.message_id,
                timestamp=properties.timestamp,
                type=properties.type,
                user_id=properties.user_id,
                app_id=properties.app_id,
            )
            outgoing.append(
                Outgoing(DEFAULT_EXCHANGE, queue, raw.body, copy, f"{properties.type} {properties.message_id}")
            )
        self._publisher.publish(outgoing)

    def ack(self, items: list[Raw]) -> None:
        channel = self._channel
        if channel is None:
            raise BusError("no dead letters are held")
        for raw in items:
            channel.basic_ack(raw.tag)
            self._held.discard(raw.tag)

    def release(self) -> None:
        """Close the reading channel: the broker requeues every unacked message in its place."""
        channel, self._channel = self._channel, None
        if channel is not None and channel.is_open:
            channel.close()
        given_back, self._held = len(self._held), set()
        if given_back:
            self._wait_for_depth(self._held_queue, given_back)

    def _wait_for_depth(self, queue: str, at_least: int, timeout: float = 10.0) -> None:
        """A quorum queue takes back requeued messages asynchronously (its depth reads 0 for a
        moment after the close): wait until they are visible, so the next read sees them."""
        deadline = time.monotonic() + timeout
        while self.depth(queue) < at_least and time.monotonic() < deadline:
            self._connection.sleep(0.02)

    def pause(self, seconds: float) -> None:
        self._connection.sleep(seconds)  # keeps heartbeats flowing while we wait
