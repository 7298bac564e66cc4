"""Republishing: the retry and dead-letter copies a consumer's decisions call for.

A copy carries the original's body and properties with the decision's headers, is persistent
and `mandatory`, and goes out on a confirm-mode channel. The original is settled only once the
broker confirmed the copy (`on_confirmed`); a nack or a return (no queue bound) calls
`on_failed`, and the consumer requeues the original: at-least-once, never lost.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass

import pika
from pika.channel import Channel
from pika.frame import Method

from bus_runtime.retry import Decision
from bus_runtime.subscriber import Subscription

log = logging.getLogger("bus_runtime.consumer")

Settle = Callable[[int, int], None]  # (generation, delivery tag) of the original


@dataclass(frozen=True)
class _Pending:
    generation: int
    delivery_tag: int
    routing_key: str
    message_id: str | None


class Republisher:
    """Publishes copies on a confirm-mode channel of the consumer's connection (I/O thread)."""

    def __init__(self, on_confirmed: Settle, on_failed: Settle, on_broken: Callable[[str], None]) -> None:
        self.on_confirmed = on_confirmed
        self.on_failed = on_failed
        self.on_broken = on_broken
        self.retried_count = 0
        self.dead_lettered_count = 0
        self._channel: Channel | None = None
        self._pending: dict[int, _Pending] = {}
        self._returned: set[int] = set()
        self._next_tag = 1

    @property
    def pending(self) -> int:
        return len(self._pending)

    def open(self, connection: pika.SelectConnection, ready: Callable[[], None]) -> None:
        def on_channel(channel: Channel) -> None:
            channel.add_on_close_callback(self._on_channel_closed)
            channel.add_on_return_callback(self._on_return)
            self._next_tag = 1
            channel.confirm_delivery(ack_nack_callback=self._on_confirm, callback=lambda _frame: on_ready(channel))

        def on_ready(channel: Channel) -> None:
            self._channel = channel
            ready()

        connection.channel(on_open_callback=on_channel)

    def reset(self) -> None:
        """The connection is gone: forget the copies in flight (their originals are redelivered)."""
        self._channel = None
        self._pending.clear()
        self._returned.clear()

    def republish(
        self,
        generation: int,
        delivery_tag: int,
        decision: Decision,
        properties: pika.BasicProperties,
        body: bytes,
        sub: Subscription,
    ) -> None:
        channel = self._channel
        if channel is None:
            return
        copied = copy.copy(properties)
        copied.headers = dict(decision.headers)
        copied.delivery_mode = 2
        self._pending[self._next_tag] = _Pending(generation, delivery_tag, decision.routing_key, copied.message_id)
        self._next_tag += 1
        channel.basic_publish(decision.exchange, decision.routing_key, body, copied, mandatory=True)
        self._log(decision, sub, copied.message_id)

    def _log(self, decision: Decision, sub: Subscription, message_id: str | None) -> None:
        headers = decision.headers
        if decision.action == "retry":
            self.retried_count += 1
            log.warning(
                "%s failed (%s: %s); retry %s of %d via %s",
                sub.handler_name,
                headers.get("rabbitform-error-type"),
                headers.get("rabbitform-error-message"),
                headers.get("rabbitform-retry-count"),
                sub.max_retries,
                decision.routing_key,
            )
        else:
            self.dead_lettered_count += 1
            log.error(
                "%s: message %s dead-lettered to %s (%s: %s: %s)",
                sub.handler_name,
                message_id,
                decision.routing_key,
                headers.get("rabbitform-dead-letter-reason"),
                headers.get("rabbitform-error-type"),
                headers.get("rabbitform-error-message"),
            )

    def _on_return(
        self, _channel: Channel, method: pika.spec.Basic.Return, properties: pika.BasicProperties, _body: bytes
    ) -> None:
        """A retry or dead-letter copy found no queue: keep the original (it is requeued)."""
        for publish_tag, pending in self._pending.items():
            if (
                publish_tag not in self._returned
                and pending.routing_key == method.routing_key
                and pending.message_id == properties.message_id
            ):
                self._returned.add(publish_tag)
                break
        log.error(
            "retry/dead-letter copy unroutable: exchange %r routing key %r has no bound queue; "
            "the original is requeued (check the topology with `rabbitform plan`)",
            method.exchange,
            method.routing_key,
        )

    def _on_confirm(self, frame: Method) -> None:
        method = frame.method
        nack = isinstance(method, pika.spec.Basic.Nack)
        tags = [t for t in self._pending if t <= method.delivery_tag] if method.multiple else [method.delivery_tag]
        for publish_tag in tags:
            pending = self._pending.pop(publish_tag, None)
            if pending is None:
                continue
            if nack or publish_tag in self._returned:
                self._returned.discard(publish_tag)
                self.on_failed(pending.generation, pending.delivery_tag)
            else:
                self.on_confirmed(pending.generation, pending.delivery_tag)

    def _on_channel_closed(self, channel: Channel, reason: BaseException) -> None:
        if channel is self._channel:
            self.on_broken(f"consumer channel closed ({reason})")
