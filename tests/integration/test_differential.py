"""The in-memory broker against RabbitMQ: the same scenarios on both, the same outcomes.

Each scenario runs on `InMemoryBroker` and on the real broker (the compiled topology imported
into the test's vhost, the real `RabbitMqEventBus`/`RabbitMqCommandBus` and
`RabbitMqEventConsumer`). Compared: how many times each handler ran, how many deliveries were
settled, retried and dead-lettered, and every message left in every queue with its exchange,
routing key, body, properties and headers (times aside). Any difference fails the test.
A last scenario runs the handlers a spec names, with a per-subscriber retry ladder, through
both brokers' spec consumers, once per `queue_settings` mode (queue arguments, policies), and
compares the real retry times with the virtual ones; another compares a circuit breaker's
moves and what it leaves in the queues.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pika
import pytest
from meiga import Error, Failure, Result, isSuccess

from bus_runtime import Command, CommandSubscriber, Event, EventSubscriber, retry
from bus_runtime.bus import RabbitMqCommandBus, RabbitMqEventBus
from bus_runtime.connector import RabbitMqConnector
from bus_runtime.consumer import RabbitMqEventConsumer
from bus_runtime.memory import DeadLettered, Delivered, InMemoryBroker, Retried
from bus_runtime.subscriber import Handler
from tests.integration import differential_handlers
from tests.integration.support import import_topology, wait_for
from topology.compile.compiler import compile_spec
from topology.compile.objects import Topology
from topology.spec.loader import load_spec, parse_spec

ORG, SERVICE = "alice", "petisco"
RETRY_DELAY_MS = 200
SPEC = parse_spec(
    f"""
organization: {ORG}
defaults: {{retry: {{delay_ms: {RETRY_DELAY_MS}, max_retries: 2}}}}
services:
  {SERVICE}:
    events:
      UserCreated:
        subscribers: {{send_mail_handler: {{}}, notify_handler: {{}}}}
    commands:
      CreateUser:
        subscribers: {{create_user_handler: {{}}}}
store: {{queue: store}}
"""
)
TOPOLOGY = compile_spec(SPEC)
ALWAYS = 10**6  # failures before success: never succeeds
TIME_HEADERS = {retry.FIRST_FAILURE_AT, retry.LAST_FAILURE_AT}


class UserCreated(Event):
    user_id: str


class CreateUser(Command):
    name: str


class HandlerFailed(Error):
    def __init__(self, message: str) -> None:
        self.message = message


# -- scenarios ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Publish:
    """What a scenario publishes: events, commands, or a raw body on an event's routing key."""

    events: Sequence[Event] = ()
    commands: Sequence[Command] = ()
    raw: Sequence[tuple[str, bytes]] = ()


@dataclass(frozen=True)
class Scenario:
    name: str
    failures: Mapping[str, int]  # handler -> failures before it succeeds
    publish: Publish
    expected_calls: Mapping[str, int]
    store_failures: int | None = None  # None: nobody consumes the store
    max_retries: int = 2


EVENT_KEY = f"{ORG}.{SERVICE}.1.event.user.created"
SCENARIOS = [
    Scenario(
        "success",
        {"send_mail_handler": 0},
        Publish(events=[UserCreated(user_id="1")]),
        {"send_mail_handler": 1},
    ),
    Scenario(
        "fail_twice_then_succeed",
        {"send_mail_handler": 2},
        Publish(events=[UserCreated(user_id="2")]),
        {"send_mail_handler": 3},
    ),
    Scenario(
        "always_fail",
        {"send_mail_handler": ALWAYS},
        Publish(events=[UserCreated(user_id="3")]),
        {"send_mail_handler": 3},
    ),
    Scenario(
        "poison_body",
        {"send_mail_handler": 0},
        Publish(raw=[(EVENT_KEY, b"this is not json")]),
        {"send_mail_handler": 0, "event_store": 0},
        store_failures=0,
    ),
    Scenario(
        "store_subscriber",
        {},
        Publish(events=[UserCreated(user_id="5")], commands=[CreateUser(name="bob")]),
        {"event_store": 3},
        store_failures=1,
    ),
    Scenario(
        "two_subscribers_one_fails",
        {"send_mail_handler": 1, "notify_handler": 0},
        Publish(events=[UserCreated(user_id="6")]),
        {"send_mail_handler": 2, "notify_handler": 1},
    ),
    Scenario(
        "command",
        {"create_user_handler": 1},
        Publish(commands=[CreateUser(name="eve")]),
        {"create_user_handler": 2},
    ),
]


class Handlers:
    """The scenario's handlers, failing as told, counting their calls (from any thread)."""

    def __init__(self, scenario: Scenario) -> None:
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.scenario = scenario

    def handler(self, name: str, failures: int) -> Handler:
        def handle(message: Any) -> Result[bool, Error]:
            with self._lock:
                self.calls[name] += 1
                call = self.calls[name]
            return Failure(HandlerFailed(f"{name} failure {call}")) if call <= failures else isSuccess

        handle.__name__ = name
        return handle

    def subscribers(self) -> list[EventSubscriber]:
        failures = self.scenario.failures
        event_handlers = [
            self.handler(n, failures[n]) for n in ("send_mail_handler", "notify_handler") if n in failures
        ]
        result = [EventSubscriber(UserCreated, event_handlers)] if event_handlers else []
        if "create_user_handler" in failures:
            result.append(
                CommandSubscriber(CreateUser, [self.handler("create_user_handler", failures["create_user_handler"])])
            )
        return result

    def store(self) -> Handler | None:
        failures = self.scenario.store_failures
        return None if failures is None else self.handler("event_store", failures)


# -- outcomes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    calls: dict[str, int]
    settled: int
    retried: int
    dead_lettered: int
    queues: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def normalise(value: Any) -> Any:
    """Plain JSON-like values: pika's `long` becomes int, bytes become str, times are dropped."""
    if isinstance(value, Mapping):
        return {str(k): normalise(v) for k, v in value.items() if not isinstance(v, datetime)}
    if isinstance(value, list | tuple):
        return [normalise(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, bool) or value is None or isinstance(value, str | float):
        return value
    if isinstance(value, int):
        return int(value)
    return repr(value)


def snapshot(
    exchange: str, routing_key: str, body: bytes, headers: Mapping[str, Any] | None, properties: Mapping[str, Any]
) -> dict[str, Any]:
    kept = {k: v for k, v in (headers or {}).items() if k not in TIME_HEADERS}
    if isinstance(kept.get("x-death"), list):
        # one entry per (queue, reason), compared as a set: RabbitMQ 3.10 keeps a client's
        # x-death in an order of its own once a message has passed several retry tiers (and
        # from 3.13 on ignores a client's x-death entirely); which entries, with which counts,
        # is the part the runtime relies on (it counts retries in a header of its own)
        kept["x-death"] = sorted(kept["x-death"], key=lambda entry: repr(sorted(normalise(entry).items())))
    return {
        "exchange": exchange,
        "routing_key": routing_key,
        "body": body.decode("utf-8", "replace"),
        "properties": normalise(properties),
        "headers": normalise(kept),
    }


def ordered(queues: Mapping[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Queue contents in a canonical order: handlers run concurrently on RabbitMQ."""
    return {
        name: sorted(items, key=lambda item: repr(sorted(item.items())))
        for name, items in sorted(queues.items())
        if items
    }


# -- the in-memory run -----------------------------------------------------------------------


def memory_queues(broker: InMemoryBroker) -> dict[str, list[dict[str, Any]]]:
    return ordered(
        {
            name: [
                snapshot(
                    m.exchange,
                    m.routing_key,
                    m.body,
                    m.headers,
                    {
                        "message_id": m.properties.message_id or None,
                        "type": m.properties.type or None,
                        "content_type": m.properties.content_type,
                        "delivery_mode": m.properties.delivery_mode,
                        "app_id": m.properties.app_id,
                        "timestamp": m.properties.timestamp,
                    },
                )
                for m in broker.messages(name)
            ]
            for name in broker.queue_names
        }
    )


def publish_in_memory(broker: InMemoryBroker, publish: Publish) -> None:
    if publish.events:
        broker.event_bus(SERVICE, on_unroutable="raise").publish(list(publish.events))
    if publish.commands:
        broker.command_bus(SERVICE, on_unroutable="raise").publish(list(publish.commands))
    for routing_key, body in publish.raw:
        broker.publish(f"{ORG}.{SERVICE}", routing_key, body)


def memory_outcome(broker: InMemoryBroker, calls: Mapping[str, int]) -> Outcome:
    broker.run_until_idle()
    return Outcome(
        calls=dict(calls),
        settled=sum(1 for e in broker.trace if isinstance(e, Delivered)),
        retried=sum(1 for e in broker.trace if isinstance(e, Retried)),
        dead_lettered=sum(1 for e in broker.trace if isinstance(e, DeadLettered)),
        queues=memory_queues(broker),
    )


def run_in_memory(scenario: Scenario) -> Outcome:
    handlers = Handlers(scenario)
    broker = InMemoryBroker(TOPOLOGY, ORG)
    consumer = broker.consumer(SERVICE, handlers.subscribers(), max_retries=scenario.max_retries)
    store = handlers.store()
    if store is not None:
        consumer.consume_store(store)
    publish_in_memory(broker, scenario.publish)
    return memory_outcome(broker, handlers.calls)


# -- the RabbitMQ run --------------------------------------------------------------------


def rabbitmq_outcome(
    consumer: RabbitMqEventConsumer,
    topology: Topology,
    amqp_url: str,
    publish: Publish,
    calls: Mapping[str, int],
    expected: Outcome,
) -> Outcome:
    """Start `consumer`, publish, wait until nothing is left to do, stop, read every queue."""
    connector = consumer.connector
    consumed = [s.queue for s in consumer.subscriptions]
    waiting = [q.name for q in topology.queues if q.name.startswith("retry.")]
    inspector = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = inspector.channel()

    def ready(queue: str) -> int:
        return int(channel.queue_declare(queue, passive=True).method.message_count)

    def idle() -> bool:
        # Nothing waits in a retry queue or a consumed queue, and at least as many deliveries
        # are settled as in memory; stopping the consumer then settles whatever is in hand.
        return consumer.handled_count >= expected.settled and all(ready(q) == 0 for q in consumed + waiting)

    consumer.start()
    try:
        if publish.events:
            with RabbitMqEventBus(connector, ORG, SERVICE, on_unroutable="raise") as bus:
                bus.publish(list(publish.events))
        if publish.commands:
            with RabbitMqCommandBus(connector, ORG, SERVICE, on_unroutable="raise") as command_bus:
                command_bus.publish(list(publish.commands))
        for routing_key, body in publish.raw:
            channel.basic_publish(f"{ORG}.{SERVICE}", routing_key, body, mandatory=True)
        wait_for(idle, "the scenario to settle on RabbitMQ", timeout=20, interval=0.02)
    finally:
        consumer.stop(timeout=10)
    try:
        queues: dict[str, list[dict[str, Any]]] = {}
        for queue in topology.queues:
            items = queues.setdefault(queue.name, [])
            while True:
                method, props, body = channel.basic_get(queue.name, auto_ack=True)
                if method is None:
                    break
                properties = {
                    "message_id": props.message_id,
                    "type": props.type,
                    "content_type": props.content_type,
                    "delivery_mode": props.delivery_mode,
                    "app_id": props.app_id,
                    "timestamp": props.timestamp,
                }
                items.append(snapshot(method.exchange, method.routing_key, body, props.headers, properties))
    finally:
        inspector.close()
    return Outcome(
        calls=dict(calls),
        settled=consumer.handled_count,
        retried=consumer.retried_count,
        dead_lettered=consumer.dead_lettered_count,
        queues=ordered(queues),
    )


def run_on_rabbitmq(scenario: Scenario, amqp_url: str, vhost: str, management_url: str, expected: Outcome) -> Outcome:
    import_topology(management_url, vhost, TOPOLOGY)
    handlers = Handlers(scenario)
    consumer = RabbitMqEventConsumer(RabbitMqConnector(amqp_url), ORG, SERVICE, max_retries=scenario.max_retries)
    consumer.consume(handlers.subscribers())
    store = handlers.store()
    if store is not None:
        consumer.consume_store(store)
    return rabbitmq_outcome(consumer, TOPOLOGY, amqp_url, scenario.publish, handlers.calls, expected)


def assert_same(real: Outcome, memory: Outcome) -> None:
    assert real.calls == memory.calls
    assert (real.settled, real.retried, real.dead_lettered) == (memory.settled, memory.retried, memory.dead_lettered)
    assert list(real.queues) == list(memory.queues)
    for queue in memory.queues:
        assert real.queues[queue] == memory.queues[queue], f"queue {queue} differs"


# -- the tests ---------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_in_memory_and_rabbitmq_agree(scenario: Scenario, amqp_url: str, vhost: str, management_url: str) -> None:
    memory = run_in_memory(scenario)
    assert {name: memory.calls.get(name, 0) for name in scenario.expected_calls} == dict(scenario.expected_calls)
    real = run_on_rabbitmq(scenario, amqp_url, vhost, management_url, memory)
    assert_same(real, memory)


def test_the_retried_subscriber_alone_sees_the_retry() -> None:
    """Scenario sanity without a broker: the successful subscriber's queue never gets a retry."""
    memory = run_in_memory(SCENARIOS[5])
    assert memory.retried == 1
    assert not any(name.endswith("notify_handler") for name in memory.queues)


HANDLERS = "tests.integration.differential_handlers"
SPEC_WITH_HANDLERS = f"""
organization: {ORG}
queue_settings: {{mode}}
defaults: {{retry: {{delay_ms: {RETRY_DELAY_MS}, max_retries: 3}}}}
services:
  {SERVICE}:
    events:
      UserCreated:
        subscribers:
          send_mail_handler: {{handler: "{HANDLERS}:send_mail_handler"}}
          audit_handler:
            handler: "{HANDLERS}:audit_handler"
            retry: {{delays_ms: [100, 300, 600], max_retries: 3}}
store: {{queue: store, handler: "{HANDLERS}:event_store"}}
"""


@pytest.mark.parametrize("mode", ["arguments", "policies"])
def test_spec_consumers_agree(tmp_path: Path, amqp_url: str, vhost: str, management_url: str, mode: str) -> None:
    """Handlers named by import path, with a per-subscriber retry policy, through both brokers'
    spec consumers (`consumer_from_spec` and `RabbitMqEventConsumer.from_spec`); with `policies`
    the retry delays and dead-lettering come from policies on both brokers."""
    path = tmp_path / "alice.yaml"
    path.write_text(SPEC_WITH_HANDLERS.replace("{mode}", mode), encoding="utf-8")
    publish = Publish(events=[differential_handlers.UserCreated(user_id="7")])

    differential_handlers.calls.clear()
    broker = InMemoryBroker.from_spec(path)
    broker.consumer_from_spec()
    publish_in_memory(broker, publish)
    memory = memory_outcome(broker, differential_handlers.calls)
    assert memory.calls == {"send_mail_handler": 2, "audit_handler": 4, "event_store": 1}
    audit_queue = f"{ORG}.{SERVICE}.1.event.user.created.audit_handler"
    virtual = [e.at_ms / 1000 for e in broker.trace if isinstance(e, Delivered) and e.queue == audit_queue]
    assert virtual == [0, 0.1, 0.4, 1.0]  # the ladder: 100, 300, 600 ms

    differential_handlers.calls.clear()
    differential_handlers.times.clear()
    topology = compile_spec(load_spec(path))
    assert bool(topology.policies) == (mode == "policies")
    assert all("x-message-ttl" not in q.arguments for q in topology.queues) == (mode == "policies")
    import_topology(management_url, vhost, topology)
    consumer = RabbitMqEventConsumer.from_spec(path, connector=RabbitMqConnector(amqp_url))
    real = rabbitmq_outcome(consumer, topology, amqp_url, publish, differential_handlers.calls, memory)
    assert_same(real, memory)
    # the timeline: each real retry arrives no earlier than the virtual one, and not much later
    measured = differential_handlers.times["audit_handler"]
    for k, (at, at_virtual) in enumerate(zip(measured, virtual, strict=True)):
        late = (at - measured[0]) - at_virtual
        assert -0.05 <= late < 1.5, f"retry {k} arrived {late:+.3f} s off its virtual schedule"


BREAKER_SPEC = f"""
organization: {ORG}
services:
  {SERVICE}:
    events:
      UserCreated:
        subscribers:
          bill_handler:
            handler: "tests.integration.ladder_handlers:needs_dependency"
            retry: {{delay_ms: 60000}}
            circuit_breaker: {{failures: 2, window_s: 30, pause_s: 1}}
"""


class BreakerMoves:
    """An instrumentation that records every circuit-breaker move with its wall-clock time."""

    def __init__(self) -> None:
        self.moves: list[tuple[float, str]] = []

    def breaker_moved(self, subscriber: str, to: str) -> None:
        self.moves.append((time.monotonic(), to))

    def __getattr__(self, name: str) -> Any:  # the instrumentation's other hooks: nothing to record
        return lambda *args, **kwargs: None


def test_the_circuit_breakers_timeline_agrees(tmp_path: Path, amqp_url: str, vhost: str, management_url: str) -> None:
    """The same breaker on both brokers, its dependency down throughout: two failures open it,
    each pause ends in one probe that fails and opens it again; the waiting messages are never
    attempted. The real moves happen at the virtual times (within a tolerance)."""
    from bus_runtime.memory import BreakerChanged
    from bus_runtime.telemetry import hooks
    from tests.integration import ladder_handlers

    path = tmp_path / "breaker.yaml"
    path.write_text(BREAKER_SPEC, encoding="utf-8")
    events = [differential_handlers.UserCreated(user_id=str(n)) for n in range(6)]
    ladder_handlers.dependency_up.clear()

    broker = InMemoryBroker.from_spec(path)
    broker.consumer_from_spec()
    broker.event_bus(SERVICE).publish(events)
    broker.advance(2500)
    virtual = [(e.at_ms / 1000, e.to) for e in broker.trace if isinstance(e, BreakerChanged)]
    assert [to for _, to in virtual] == ["open", "half_open", "open", "half_open", "open"]
    queue = f"{ORG}.{SERVICE}.1.event.user.created.bill_handler"
    memory_left = (len(broker.messages(queue)), len(broker.messages(f"retry.{queue}")))
    assert memory_left == (2, 4)

    topology = compile_spec(load_spec(path))
    import_topology(management_url, vhost, topology)
    recorder = BreakerMoves()
    hooks.install(recorder)  # type: ignore[arg-type]
    ladder_handlers.calls.clear()
    consumer = RabbitMqEventConsumer.from_spec(path, connector=RabbitMqConnector(amqp_url), workers=1)
    try:
        consumer.start()
        with RabbitMqEventBus(consumer.connector, ORG, SERVICE) as bus:
            bus.publish(events)
        wait_for(lambda: len(recorder.moves) >= len(virtual), "the breaker's moves", timeout=20)
    finally:
        consumer.stop(timeout=10)
        hooks.uninstall(recorder)  # type: ignore[arg-type]
    first_call = ladder_handlers.calls["needs_dependency"][0]
    real = [(at - first_call, to) for at, to in recorder.moves[: len(virtual)]]
    assert [to for _, to in real] == [to for _, to in virtual]
    for (at, to), (at_virtual, _) in zip(real, virtual, strict=True):
        assert -0.05 <= at - at_virtual < 0.75, f"{to} at {at:.3f} s, virtual {at_virtual:.3f} s"
    inspector = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = inspector.channel()
        left = tuple(
            int(channel.queue_declare(name, passive=True).method.message_count) for name in (queue, f"retry.{queue}")
        )
    finally:
        inspector.close()
    assert left == memory_left
    assert len(ladder_handlers.calls["needs_dependency"]) == 4  # 2 failures + 2 probes: the rest never attempted
