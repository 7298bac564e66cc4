"""The in-memory broker: the exchanges, queues and bindings `rabbitform apply` creates, in a
process, on a virtual clock.

It models what our topology relies on: topic, direct and fanout routing and the default
exchange; the queue arguments `x-message-ttl`, `x-dead-letter-exchange` and
`x-dead-letter-routing-key` (with `x-death` headers as RabbitMQ 3.x writes them), or the same
settings from the topology's policies; deliveries,
acks and rejects. Nothing happens by itself: `run_until_idle()` and `advance(ms)` deliver
messages and let TTLs expire, so tests are deterministic and never sleep.
"""

from __future__ import annotations

import copy
import itertools
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from os import PathLike
from typing import TYPE_CHECKING, Any, Literal

from bus_runtime.memory.clients import InMemoryCommandBus, InMemoryConsumer, InMemoryEventBus
from bus_runtime.memory.clock import VirtualClock
from bus_runtime.memory.deadletter import death_time, with_death
from bus_runtime.memory.messages import Listener, Properties, QueuedMessage
from bus_runtime.memory.routing import DEFAULT_EXCHANGE, route
from bus_runtime.memory.trace import (
    Expired,
    Handled,
    Published,
    Rejected,
    Routed,
    TraceEntry,
    Unroutable,
    format_trace,
)
from bus_runtime.spec_runtime import spec_subscriptions
from bus_runtime.subscriber import EventSubscriber, SubscriptionGuard
from topology.compile.objects import Binding, Exchange, Queue, Topology
from topology.compile.policies import effective_arguments
from topology.naming import DEFAULT_LAYOUT, Layout
from topology.spec.model import Spec

if TYPE_CHECKING:
    from bus_runtime.deadletters.api import DeadLetterQueues

DEFAULT_MAX_STEPS = 10_000


class BrokerError(Exception):
    """Something RabbitMQ would refuse with a channel error (404 NOT_FOUND and friends)."""


class NotIdleError(BrokerError):
    """`run_until_idle` hit its step limit: something keeps producing work (an endless loop)."""


@dataclass
class _Entry:
    seq: int
    message: QueuedMessage
    expires_at_ms: int | None


@dataclass
class _QueueState:
    queue: Queue
    ready: deque[_Entry] = field(default_factory=deque)

    @property
    def ttl_ms(self) -> int | None:
        ttl = self.queue.arguments.get("x-message-ttl")
        return ttl if isinstance(ttl, int) and not isinstance(ttl, bool) and ttl >= 0 else None


@dataclass
class _InFlight:
    queue: str
    entry: _Entry


class InMemoryBroker:
    """A broker holding one compiled topology. Build it with `from_spec(path)` or from a `Topology`."""

    def __init__(
        self,
        topology: Topology | None = None,
        organization: str = "",
        *,
        spec: Spec | None = None,
        start: datetime | None = None,
        layout: Layout | None = None,
    ) -> None:
        self.organization = organization or (spec.organization if spec else "")
        # whose routing keys and queue names its buses and consumers use (the spec's by default)
        self.layout: Layout = layout or (spec.layout if spec else DEFAULT_LAYOUT)
        self.vhost = topology.vhost if topology is not None else (spec.vhost if spec else "/")
        self.spec = spec
        self.clock = VirtualClock(start) if start else VirtualClock()
        self.trace: list[TraceEntry] = []
        self._exchanges: dict[str, Exchange] = {}
        self._bindings: dict[str, list[Binding]] = {}
        self._queues: dict[str, _QueueState] = {}
        self._listeners: dict[str, list[Listener]] = {}
        self._turn: Counter[str] = Counter()
        self._in_flight: dict[int, _InFlight] = {}
        self._seq = itertools.count(1)
        self._tags = itertools.count(1)
        if topology is not None:
            self.declare(topology)

    @classmethod
    def from_spec(
        cls,
        spec: str | PathLike[str] | Spec,
        variables: Mapping[str, Any] | None = None,
        *,
        start: datetime | None = None,
    ) -> InMemoryBroker:
        """The topology `rabbitform apply` would create for this spec (a path or a loaded `Spec`)."""
        from topology.compile.compiler import compile_spec
        from topology.spec.loader import load_spec

        loaded = spec if isinstance(spec, Spec) else load_spec(spec, variables)
        return cls(compile_spec(loaded), loaded.organization, spec=loaded, start=start)

    # -- topology --------------------------------------------------------------------------

    def declare(self, topology: Topology) -> None:
        """Add exchanges, queues and bindings (redeclaring an existing one keeps it, as AMQP does)."""
        for exchange in topology.exchanges:
            self._exchanges.setdefault(exchange.name, exchange)
        for queue in topology.queues:
            # `queue_settings: policies`: TTL and dead-lettering come from the queue's effective policy.
            effective = replace(queue, arguments=effective_arguments(queue, topology.policies))
            self._queues.setdefault(queue.name, _QueueState(effective))
        for binding in topology.bindings:
            existing = self._bindings.setdefault(binding.source, [])
            if binding.key not in {b.key for b in existing}:
                existing.append(binding)

    @property
    def queue_names(self) -> list[str]:
        return sorted(self._queues)

    @property
    def exchange_names(self) -> list[str]:
        return sorted(self._exchanges)

    def has_queue(self, name: str) -> bool:
        return name in self._queues

    # -- AMQP-level operations ------------------------------------------------------------

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        headers: Mapping[str, Any] | None = None,
        properties: Properties | None = None,
    ) -> list[str]:
        """Publish like a client does; returns the queues that got a copy (empty: unroutable)."""
        self.require_exchange(exchange)
        props = properties or Properties()
        self.record(Published(self.now_ms, exchange, routing_key, props.type, props.message_id))
        message = QueuedMessage(body, exchange, routing_key, dict(headers or {}), props)
        return self.enqueue(message)

    def enqueue(self, message: QueuedMessage) -> list[str]:
        """Route a message through its exchange into queues, tracing each copy. No `Published`
        entry: consumers and the broker itself use this after tracing why they republish."""
        if message.exchange == DEFAULT_EXCHANGE:
            queues = [message.routing_key] if message.routing_key in self._queues else []
        elif message.exchange in self._exchanges:
            exchange_type = self._exchanges[message.exchange].type
            queues = route(exchange_type, self._bindings.get(message.exchange, ()), message.routing_key)
        else:
            queues = []  # RabbitMQ drops dead letters sent to a missing exchange
        if not queues:
            self.record(Unroutable(self.now_ms, message.exchange, message.routing_key))
        for name in queues:
            state = self._queues[name]
            ttl = state.ttl_ms
            own = replace(message, headers=_copy_headers(message.headers), enqueued_at_ms=self.now_ms)
            state.ready.append(_Entry(next(self._seq), own, None if ttl is None else self.now_ms + ttl))
            self.record(Routed(self.now_ms, message.exchange, message.routing_key, name, ttl))
        return queues

    def get(self, queue: str) -> tuple[int, QueuedMessage] | None:
        """`basic.get`: take the next ready message unacked; returns (delivery tag, message)."""
        state = self._queue(queue)
        if not state.ready:
            return None
        entry = state.ready.popleft()
        tag = next(self._tags)
        self._in_flight[tag] = _InFlight(queue, entry)
        return tag, entry.message

    def ack(self, tag: int) -> None:
        if self._in_flight.pop(tag, None) is None:
            raise BrokerError(f"unknown delivery tag {tag} (PRECONDITION_FAILED)")

    def reject(self, tag: int, requeue: bool = False) -> None:
        """Requeue at the head, or dead-letter through the queue's `x-dead-letter-exchange`."""
        flight = self._in_flight.pop(tag, None)
        if flight is None:
            raise BrokerError(f"unknown delivery tag {tag} (PRECONDITION_FAILED)")
        state = self._queues[flight.queue]
        if requeue:
            entry = flight.entry
            entry.message = replace(entry.message, redelivered=True)
            state.ready.appendleft(entry)
            self.record(Rejected(self.now_ms, flight.queue, True, None, ""))
            return
        exchange, routing_key = _dead_letter_target(state.queue, flight.entry.message)
        self.record(Rejected(self.now_ms, flight.queue, False, exchange, routing_key))
        self._dead_letter(state.queue, flight.entry.message, "rejected")

    def subscribe(self, queue: str, listener: Listener) -> None:
        """`basic.consume`: several listeners on one queue take turns (round robin)."""
        self._queue(queue)
        self._listeners.setdefault(queue, []).append(listener)

    def unsubscribe(self, queue: str, listener: Listener) -> None:
        listeners = self._listeners.get(queue, [])
        if listener in listeners:
            listeners.remove(listener)

    # -- reading state --------------------------------------------------------------------

    def messages(self, queue: str) -> list[QueuedMessage]:
        """The ready messages of a queue, oldest first, with their headers."""
        return [entry.message for entry in self._queue(queue).ready]

    def depth(self, queue: str) -> int:
        return len(self._queue(queue).ready)

    def depths(self) -> dict[str, int]:
        """Every queue that holds ready messages, with how many."""
        return {name: len(state.ready) for name, state in sorted(self._queues.items()) if state.ready}

    def calls(self, handler: str | Callable[..., Any], queue: str | None = None) -> int:
        """How many times a handler ran (deliveries whose body could not be parsed do not count)."""
        name = handler if isinstance(handler, str) else getattr(handler, "__name__", "")
        return sum(
            1
            for entry in self.trace
            if isinstance(entry, Handled) and entry.called and entry.handler == name and queue in (None, entry.queue)
        )

    def handler_calls(self) -> Counter[tuple[str, str]]:
        """Handler runs per (queue, handler)."""
        return Counter((e.queue, e.handler) for e in self.trace if isinstance(e, Handled) and e.called)

    def format_trace(self, entries: Iterable[TraceEntry] | None = None) -> str:
        return format_trace(self.trace if entries is None else entries)

    @property
    def now_ms(self) -> int:
        return self.clock.elapsed_ms

    def now(self) -> datetime:
        return self.clock.now()

    def record(self, entry: TraceEntry) -> None:
        self.trace.append(entry)

    # -- clients --------------------------------------------------------------------------

    def event_bus(self, service: str, on_unroutable: Literal["log", "raise"] = "log") -> InMemoryEventBus:
        """A bus that publishes events to `service`'s exchange, like `RabbitMqEventBus`."""
        self._require_organization()
        return InMemoryEventBus(self, self.organization, service, on_unroutable=on_unroutable, layout=self.layout)

    def command_bus(self, service: str, on_unroutable: Literal["log", "raise"] = "log") -> InMemoryCommandBus:
        """A bus that publishes commands to `service`'s exchange, like `RabbitMqCommandBus`."""
        self._require_organization()
        return InMemoryCommandBus(self, self.organization, service, on_unroutable=on_unroutable, layout=self.layout)

    def dead_letters(self) -> DeadLetterQueues:
        """List, show, replay and purge dead letters as `rabbitform dlq` does on RabbitMQ."""
        from bus_runtime.deadletters.api import DeadLetterQueues

        return DeadLetterQueues.in_memory(self)

    def consumer(
        self,
        service: str,
        subscribers: Sequence[EventSubscriber] = (),
        max_retries: int = 5,
        inbox: SubscriptionGuard | None = None,
    ) -> InMemoryConsumer:
        """A started consumer for `service`, like `RabbitMqEventConsumer(...).consume(subscribers)`."""
        self._require_organization()
        consumer = InMemoryConsumer(
            self, self.organization, service, max_retries=max_retries, layout=self.layout, inbox=inbox
        )
        if subscribers:
            consumer.consume(subscribers)
        consumer.start()
        return consumer

    def consumer_from_spec(
        self, service: str | None = None, subscribers: Iterable[str] | None = None
    ) -> InMemoryConsumer:
        """A started consumer running the handlers the spec names, with their retry policies:
        the subscriptions `RabbitMqEventConsumer.from_spec` builds (`bus_runtime.spec_runtime`).
        A spec that names no handler gives a consumer with nothing to run."""
        spec = self.spec
        if spec is None:
            raise BrokerError("this broker was not built from a spec: use InMemoryBroker.from_spec(path)")
        owner = service or min(spec.services, default="")
        consumer = InMemoryConsumer(
            self, self.organization, owner, max_retries=spec.defaults.retry.max_retries, layout=spec.layout
        )
        store = spec.resolved_store()
        names_handler = any(s.handler for s in spec.subscribers()) or bool(store and store.handler)
        if subscribers is not None or names_handler:
            consumer.add_subscriptions(spec_subscriptions(spec, service, subscribers))
        consumer.start()
        return consumer

    # -- driving --------------------------------------------------------------------------

    def run_until_idle(self, max_steps: int = DEFAULT_MAX_STEPS) -> int:
        """Deliver, and let retry TTLs expire on the virtual clock, until nothing is left to do.

        Returns the number of steps taken (a delivery, or a jump of the clock). Raises
        `NotIdleError` after `max_steps`: something keeps producing work.
        """
        return self._run(None, max_steps)

    def advance(self, ms: int, max_steps: int = DEFAULT_MAX_STEPS) -> int:
        """Move the clock `ms` forward, doing in order everything due on the way (`advance(0)`
        delivers what is ready now without letting time pass)."""
        if ms < 0:
            raise ValueError("the virtual clock only moves forward")
        target = self.now_ms + ms
        steps = self._run(target, max_steps)
        self.clock.advance_to(target)
        return steps

    def _run(self, horizon_ms: int | None, max_steps: int) -> int:
        steps = 0
        while self._step(horizon_ms):
            steps += 1
            if steps >= max_steps:
                raise NotIdleError(self._busy_report(max_steps))
        return steps

    def _step(self, horizon_ms: int | None) -> bool:
        """Do the next thing that happens; False when nothing is due before the horizon."""
        if self._expire_due():
            return True
        if self._deliver_next():
            return True
        next_expiry = self._next_expiry()
        if next_expiry is None or (horizon_ms is not None and next_expiry > horizon_ms):
            return False
        self.clock.advance_to(next_expiry)
        return True

    def _expire_due(self) -> bool:
        due: list[tuple[int, int, _QueueState]] = []
        for state in self._queues.values():
            for entry in state.ready:
                if entry.expires_at_ms is None or entry.expires_at_ms > self.now_ms:
                    break  # one TTL per queue: expiry follows queue order
                due.append((entry.expires_at_ms, entry.seq, state))
        for _, _, state in sorted(due, key=lambda item: item[:2]):
            entry = state.ready.popleft()
            exchange, routing_key = _dead_letter_target(state.queue, entry.message)
            self.record(Expired(self.now_ms, state.queue.name, exchange, routing_key))
            self._dead_letter(state.queue, entry.message, "expired")
        return bool(due)

    def _next_expiry(self) -> int | None:
        """The next time something happens by itself: a TTL runs out, or a paused listener
        (a circuit breaker's pause) wakes up with messages waiting for it."""
        heads = [s.ready[0].expires_at_ms for s in self._queues.values() if s.ready]
        wakes = [
            getattr(listener, "wakes_at_ms", None)
            for name, listeners in self._listeners.items()
            if self._queues[name].ready
            for listener in listeners
        ]
        times = [t for t in heads if t is not None] + [t for t in wakes if t is not None and t > self.now_ms]
        return min(times) if times else None

    def _deliver_next(self) -> bool:
        candidates = [
            (state.ready[0].seq, name)
            for name, listeners in self._listeners.items()
            if (state := self._queues[name]).ready and any(listener.active for listener in listeners)
        ]
        if not candidates:
            return False
        _, queue = min(candidates)
        listener = self._next_listener(queue)
        taken = self.get(queue)
        assert taken is not None
        tag, message = taken
        try:
            listener.on_delivery(tag, queue, message)
        except BaseException:
            if tag in self._in_flight:  # the consumer died mid-delivery: the broker requeues it
                self.reject(tag, requeue=True)
            raise
        return True

    def _next_listener(self, queue: str) -> Listener:
        active = [listener for listener in self._listeners[queue] if listener.active]
        listener = active[self._turn[queue] % len(active)]
        self._turn[queue] += 1
        return listener

    def _dead_letter(self, queue: Queue, message: QueuedMessage, reason: str) -> None:
        exchange, routing_key = _dead_letter_target(queue, message)
        if exchange is None:
            return
        headers = with_death(
            message.headers,
            queue=queue.name,
            reason=reason,
            exchange=message.exchange,
            routing_keys=[message.routing_key],
            time=death_time(self.now()),
        )
        self.enqueue(QueuedMessage(message.body, exchange, routing_key, headers, message.properties))

    def _busy_report(self, max_steps: int) -> str:
        recent = self.format_trace(self.trace[-8:])
        return (
            f"still busy after {max_steps} steps (virtual time {self.now_ms} ms): a handler or a retry "
            f"policy keeps producing work. Queues holding messages: {self.depths()}. Last events:\n{recent}"
        )

    # -- helpers ----------------------------------------------------------------------------

    def _queue(self, name: str) -> _QueueState:
        try:
            return self._queues[name]
        except KeyError:
            raise BrokerError(f"no queue {name!r} in this topology (NOT_FOUND)") from None

    def _require_organization(self) -> None:
        if not self.organization:
            raise BrokerError("buses and consumers need the organization: InMemoryBroker(topology, organization=...)")

    def require_exchange(self, name: str) -> None:
        if name != DEFAULT_EXCHANGE and name not in self._exchanges:
            raise BrokerError(f"no exchange {name!r} in this topology (NOT_FOUND)")


def _dead_letter_target(queue: Queue, message: QueuedMessage) -> tuple[str | None, str]:
    exchange = queue.arguments.get("x-dead-letter-exchange")
    routing_key = queue.arguments.get("x-dead-letter-routing-key", message.routing_key)
    return (None if exchange is None else str(exchange)), str(routing_key)


def _copy_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(dict(headers))
