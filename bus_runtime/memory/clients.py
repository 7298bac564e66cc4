"""Buses and a consumer on the in-memory broker, with the publish and consume API of the
RabbitMQ ones. The consumer runs `dispatch.handle_delivery`, the code the RabbitMQ consumer
runs, and carries out its `Decision` the same way: republish, then ack.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from bus_runtime import retry
from bus_runtime.breaker import CircuitBreaker, counts_as_success
from bus_runtime.dispatch import delivery_of, failure_of_exception, handle_delivery
from bus_runtime.errors import TopologyMissing, UnroutableError
from bus_runtime.memory.messages import Listener, Properties, QueuedMessage
from bus_runtime.memory.trace import BreakerChanged, DeadLettered, Delivered, Handled, Retried, TraceEntry
from bus_runtime.message import Command, Event, Message
from bus_runtime.retry import decide
from bus_runtime.subscriber import EventSubscriber, Handler, Subscription, store_subscription, subscriptions
from bus_runtime.telemetry import hooks
from bus_runtime.wire import encode
from topology import naming

if TYPE_CHECKING:
    from bus_runtime.subscriber import SubscriptionGuard

OnUnroutable = Literal["log", "raise"]
_log = logging.getLogger("bus_runtime.memory")


class BrokerApi(Protocol):
    """What the clients use of `BrokerApi` (which builds them)."""

    vhost: str

    @property
    def now_ms(self) -> int: ...

    def now(self) -> datetime: ...

    def record(self, entry: TraceEntry) -> None: ...

    def has_queue(self, name: str) -> bool: ...

    def require_exchange(self, name: str) -> None: ...

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        headers: Mapping[str, Any] | None = None,
        properties: Properties | None = None,
    ) -> list[str]: ...

    def enqueue(self, message: QueuedMessage) -> list[str]: ...

    def subscribe(self, queue: str, listener: Listener) -> None: ...

    def ack(self, tag: int) -> None: ...

    def reject(self, tag: int, requeue: bool = False) -> None: ...


class _InMemoryBus:
    kind: ClassVar[type[Message]] = Message

    def __init__(
        self,
        broker: BrokerApi,
        organization: str,
        service: str,
        on_unroutable: OnUnroutable = "log",
        layout: naming.Layout = naming.DEFAULT_LAYOUT,
    ) -> None:
        self.broker = broker
        self.layout = layout
        self.organization = organization
        self.service = service
        self.exchange = naming.exchange(organization, service)
        self.on_unroutable = on_unroutable
        self.published_count = 0
        self.unroutable_count = 0

    def publish(self, messages: Message | Sequence[Message], headers: Mapping[str, Any] | None = None) -> list[Message]:
        """Publish one message or a batch to the service's exchange; returns the unroutable ones
        (logged and counted; raised as `UnroutableError`, as on RabbitMQ, with `on_unroutable="raise"`)."""
        batch = [messages] if isinstance(messages, Message) else list(messages)
        for message in batch:
            if not isinstance(message, self.kind):
                raise TypeError(f"{type(self).__name__} publishes {self.kind.__name__}s, not {type(message).__name__}")
        lost: list[tuple[Message, str]] = []
        for message in batch:
            wire = encode(message, self.organization, self.service, headers, self.layout)
            properties = replace(Properties.of(wire), app_id=self.service)
            queues = self.broker.publish(self.exchange, wire.routing_key, wire.body, wire.headers, properties)
            self.published_count += 1
            if not queues:
                lost.append((message, f"{wire.type} {wire.message_id}"))
        if lost:
            self.unroutable_count += len(lost)
            labels = [label for _, label in lost]
            _log.warning("%d message(s) unroutable on %s: %s", len(lost), self.exchange, ", ".join(labels))
            if self.on_unroutable == "raise":
                raise UnroutableError(labels)
        return [message for message, _ in lost]


class InMemoryEventBus(_InMemoryBus):
    kind: ClassVar[type[Message]] = Event


class InMemoryCommandBus(_InMemoryBus):
    kind: ClassVar[type[Message]] = Command

    def dispatch(self, command: Command | Sequence[Command]) -> list[Message]:
        """petisco's name for publishing a command."""
        return self.publish(command)


class _QueueListener:
    """One subscription attached to its queue."""

    def __init__(self, consumer: InMemoryConsumer, subscription: Subscription) -> None:
        self.consumer = consumer
        self.subscription = subscription
        settings = subscription.circuit_breaker
        self.breaker = CircuitBreaker(settings) if settings else None

    @property
    def active(self) -> bool:
        """Running, and its circuit breaker (on the virtual clock) lets a delivery through."""
        if not self.consumer.running:
            return False
        breaker = self.breaker
        if breaker is None:
            return True
        if breaker.state == "open":
            self._moved(breaker.pause_over(self.consumer.broker.now_ms / 1000))
        return breaker.state == "closed" or (breaker.state == "half_open" and not breaker.probing)

    @property
    def wakes_at_ms(self) -> int | None:
        reopen = self.breaker.reopen_at() if self.breaker and self.consumer.running else None
        return None if reopen is None else math.ceil(reopen * 1000)

    def on_delivery(self, tag: int, queue: str, message: QueuedMessage) -> None:
        breaker = self.breaker
        if breaker is not None:
            breaker.admits()
        decision = self.consumer.handle(tag, self.subscription, message)
        if breaker is not None:
            now_s = self.consumer.broker.now_ms / 1000
            self._moved(breaker.record(counts_as_success(decision), now_s))

    def _moved(self, to: str | None) -> None:
        if to is not None:
            sub, broker = self.subscription, self.consumer.broker
            broker.record(BreakerChanged(broker.now_ms, sub.queue, sub.handler_name, to))
            hooks.breaker_moved(sub.handler_name, to)


class InMemoryConsumer:
    """`RabbitMqEventConsumer`'s API on the in-memory broker: `consume(subscribers)`, `start()`, `stop()`.

    Deliveries happen when the broker runs (`run_until_idle`, `advance`), not in a thread.
    """

    def __init__(
        self,
        broker: BrokerApi,
        organization: str,
        service: str,
        max_retries: int = 5,
        layout: naming.Layout = naming.DEFAULT_LAYOUT,
        inbox: SubscriptionGuard | None = None,
    ) -> None:
        self.broker = broker
        self.layout = layout
        self.organization = organization
        self.service = service
        self.max_retries = max_retries
        self.inbox = inbox  # `bus_runtime.outbox.Inbox`, as on `RabbitMqEventConsumer`
        self.running = False
        self._listeners: list[_QueueListener] = []

    @property
    def subscriptions(self) -> list[Subscription]:
        return [listener.subscription for listener in self._listeners]

    def consume(self, subscribers: Iterable[EventSubscriber]) -> None:
        """One queue per handler, named as the topology names it."""
        self.add_subscriptions(
            subscriptions(self.organization, self.service, subscribers, self.max_retries, self.layout)
        )

    def consume_store(
        self, handler: Handler, queue: str = naming.DEFAULT_STORE_QUEUE, max_retries: int | None = None
    ) -> None:
        """The store hears every message; its retries go through this service's retry exchange."""
        retries = self.max_retries if max_retries is None else max_retries
        self.add_subscriptions(
            [store_subscription(self.organization, self.service, handler, retries, queue, self.layout)]
        )

    def add_subscriptions(self, items: Iterable[Subscription]) -> None:
        """Attach each subscription to its queue; raises `TopologyMissing` (as the RabbitMQ
        consumer does on start) when a queue is not in the topology."""
        subs = list(items)
        if self.inbox is not None:
            subs = [self.inbox.guard(sub) for sub in subs]
        missing = [s.queue for s in subs if not self.broker.has_queue(s.queue)]
        if missing:
            raise TopologyMissing(self.broker.vhost, missing)
        for subscription in subs:
            listener = _QueueListener(self, subscription)
            self.broker.subscribe(subscription.queue, listener)
            self._listeners.append(listener)

    def start(self) -> InMemoryConsumer:
        self.running = True
        return self

    def stop(self) -> None:
        self.running = False

    def handle(self, tag: int, subscription: Subscription, message: QueuedMessage) -> retry.Decision:
        """Run the shared dispatch, then carry out its decision: republish (if any), then ack."""
        broker = self.broker
        queue, name = subscription.queue, subscription.handler_name
        attempt = retry.retry_count(message.headers) + 1
        broker.record(Delivered(broker.now_ms, queue, name, message.message_id, attempt))
        try:
            decision, parsed = handle_delivery(
                subscription, message.body, message.routing_key, message.headers, now=broker.now()
            )
        except Exception as exc:  # a bug outside the handler: retried like a handler failure, as on RabbitMQ
            delivery = delivery_of(subscription, message.routing_key, message.headers)
            decision = decide(delivery, failure_of_exception(exc), subscription.max_retries, broker.now())
            parsed = None
        called = parsed is not None
        if decision.action == "ack":
            broker.record(Handled(broker.now_ms, queue, name, called, ok=True))
            broker.ack(tag)
            return decision
        headers = decision.headers
        broker.record(
            Handled(
                broker.now_ms,
                queue,
                name,
                called,
                ok=False,
                error_type=str(headers.get(retry.ERROR_TYPE, "")),
                error_message=str(headers.get(retry.ERROR_MESSAGE, "")),
            )
        )
        if decision.action == "retry":
            count = retry.retry_count(headers)
            entry: Retried | DeadLettered = Retried(
                broker.now_ms, queue, name, count, subscription.max_retries, decision.exchange, decision.routing_key
            )
        else:
            reason = str(headers.get(retry.DEAD_LETTER_REASON, ""))
            entry = DeadLettered(broker.now_ms, queue, name, reason, decision.exchange, decision.routing_key)
        broker.record(entry)
        broker.require_exchange(decision.exchange)
        copy = QueuedMessage(message.body, decision.exchange, decision.routing_key, dict(headers), message.properties)
        if broker.enqueue(replace(copy, properties=replace(message.properties, delivery_mode=2))):
            broker.ack(tag)
        else:  # the copy found no queue: keep the original, as the RabbitMQ consumer does
            broker.reject(tag, requeue=True)
        return decision
