"""Republishing: the retry and dead-letter copies a consumer's decisions call for.

A copy carries the original's body and properties with the decision's headers, is persistent
and `mandatory`, and is published with a confirm on a connection of its own, never on the
consuming one: during a broker memory alarm the broker blocks connections that publish, and
acks on the consuming connection must keep flowing. The original is settled only once the
broker confirmed the copy (`on_confirmed`); a nack, a return (no queue bound) or a connection
that cannot be re-established calls `on_failed`, and the consumer requeues the original:
at-least-once, never lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import pika

from bus_runtime.connector import RabbitMqConnector
from bus_runtime.iothread import IoThread
from bus_runtime.publisher import ConfirmedPublisher, Outgoing
from bus_runtime.retry import Decision
from bus_runtime.subscriber import Subscription

log = logging.getLogger("bus_runtime.consumer")

Settle = Callable[[int, int], None]  # (generation, delivery tag) of the original
Copy = tuple[int, Decision, pika.BasicProperties, bytes, Subscription]  # (delivery tag, decision, original)


class Republisher:
    """Publishes copies on its own confirmed connection, driven by the consumer's I/O loop: a
    copy and its confirm cost no thread hand-off (a connection of its own is what keeps the
    acks flowing through a memory alarm, not a thread of its own)."""

    def __init__(
        self,
        connector: RabbitMqConnector,
        io: IoThread,
        on_confirmed: Settle,
        on_failed: Settle,
        on_settled: Callable[[], None] | None = None,
    ) -> None:
        self.io = io
        self.on_confirmed = on_confirmed
        self.on_failed = on_failed
        self.on_settled = on_settled  # after a batch's originals are settled: send their acks at once
        self.retried_count = 0
        self.dead_lettered_count = 0
        self.pending = 0  # copies not yet confirmed or failed (consumer's I/O thread)
        self._publisher = ConfirmedPublisher(connector, purpose="republisher", io=io)

    def republish(
        self,
        generation: int,
        delivery_tag: int,
        decision: Decision,
        properties: pika.BasicProperties,
        body: bytes,
        sub: Subscription,
    ) -> None:
        """Publish the copy `decision` asks for (call on the consumer's I/O thread)."""
        self.republish_batch(generation, [(delivery_tag, decision, properties, body, sub)])

    def republish_batch(self, generation: int, copies: Sequence[Copy]) -> None:
        """Publish the copies of one drained batch of results in one submission (one wake-up of
        the publisher's thread, one callback back): under a steady trickle of failures, a
        hand-off per copy costs more than the publish itself. Each original is still settled
        by its own copy's confirm."""
        if not copies:
            return
        items: list[Outgoing] = []
        tags: list[int] = []
        for delivery_tag, decision, properties, body, sub in copies:
            copied = pika.BasicProperties()  # a field-by-field copy: copy.copy costs several times more
            copied.__dict__.update(properties.__dict__)
            copied.headers = dict(decision.headers)
            copied.delivery_mode = 2
            label = f"{decision.action} copy of {copied.message_id}"
            items.append(Outgoing(decision.exchange, decision.routing_key, body, copied, label))
            tags.append(delivery_tag)
            self._log(decision, sub, copied.message_id)
        self.pending += len(items)

        def done(failures: dict[int, str], unroutable: list[int]) -> None:  # on the consumer's I/O thread
            self._settle_batch(generation, tags, items, failures, set(unroutable))

        self._publisher.submit(items, done)

    def _settle_batch(
        self, generation: int, tags: list[int], items: list[Outgoing], failures: dict[int, str], unroutable: set[int]
    ) -> None:
        for index, (tag, item) in enumerate(zip(tags, items, strict=True)):
            self._settle(generation, tag, item, failures.get(index), index in unroutable)
        if self.on_settled is not None:
            self.on_settled()

    def close(self, timeout: float = 5.0) -> None:
        self._publisher.close(timeout)

    def _settle(self, generation: int, delivery_tag: int, item: Outgoing, failure: str | None, returned: bool) -> None:
        self.pending -= 1
        if failure is None and not returned:
            self.on_confirmed(generation, delivery_tag)
            return
        if returned:
            log.error(
                "retry/dead-letter copy unroutable: exchange %r routing key %r has no bound queue; "
                "the original is requeued (check the topology with `rabbitform plan`)",
                item.exchange,
                item.routing_key,
            )
        else:
            log.error("%s not confirmed (%s); the original is requeued", item.label, failure)
        self.on_failed(generation, delivery_tag)

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
