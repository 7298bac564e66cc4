"""The runtime follows the spec's layout: with `layout: petisco` it publishes petisco's routing
keys, consumes petisco's queues, and retries (the store too) by petisco's routes. Run on the
in-memory broker, which holds the compiled topology."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from meiga import Error, Failure, isSuccess

from bus_runtime import Event, EventSubscriber
from bus_runtime.configurer import RabbitMqEventConfigurer
from bus_runtime.connector import RabbitMqConnector
from bus_runtime.memory import InMemoryBroker
from bus_runtime.memory.trace import Retried
from bus_runtime.spec_runtime import spec_subscriptions
from bus_runtime.subscriber_spec import spec_for_subscribers
from bus_runtime.wire import decode, encode
from topology.compile.compiler import compile_spec
from topology.spec.loader import parse_spec

SPEC = """
organization: acme
layout: petisco
defaults: {retry: {delay_ms: 1000, max_retries: 2}}
services:
  svc:
    events:
      UserCreated:
        subscribers: {send_mail_handler: {}}
store: {}
"""
QUEUE = "acme.svc.1.event.user_created.send_mail_handler"


class UserCreated(Event):
    user_id: str


class HTTPRequestFailed(Event):
    url: str


def broker() -> InMemoryBroker:
    return InMemoryBroker.from_spec(parse_spec(SPEC))


def test_petisco_routing_keys_and_wire_names() -> None:
    wire = encode(UserCreated(user_id="1"), "acme", "svc", layout="petisco")
    assert wire.routing_key == "acme.svc.1.event.user_created"
    assert json.loads(wire.body)["data"]["type"] == "user.created"
    acronym = encode(HTTPRequestFailed(url="u"), "acme", "svc", layout="petisco")
    assert acronym.routing_key == "acme.svc.1.event.h_t_t_p_request_failed"
    assert json.loads(acronym.body)["data"]["type"] == "h.t.t.p.request.failed"
    assert isinstance(decode(acronym.body, HTTPRequestFailed), HTTPRequestFailed)  # petisco's name is accepted
    assert encode(UserCreated(user_id="1"), "acme", "svc").routing_key == "acme.svc.1.event.user.created"


def test_an_event_reaches_petiscos_subscriber_queue_and_the_store() -> None:
    memory = broker()
    assert memory.layout == "petisco"
    memory.event_bus("svc").publish(UserCreated(user_id="1"))
    assert memory.depths()[QUEUE] == 1
    assert memory.depths()["store"] == 1


def failing(calls: list[str]) -> Callable[[Any], Any]:
    def send_mail_handler(event: UserCreated) -> Any:
        calls.append(event.user_id)
        return Failure(Error()) if len(calls) == 1 else isSuccess

    return send_mail_handler


def test_a_failure_retries_through_petiscos_retry_queue() -> None:
    memory = broker()
    calls: list[str] = []
    memory.consumer("svc", [EventSubscriber(UserCreated, [failing(calls)])])
    memory.event_bus("svc").publish(UserCreated(user_id="1"))
    memory.run_until_idle()
    assert calls == ["1", "1"]
    retried = [entry for entry in memory.trace if isinstance(entry, Retried)]
    assert [(e.queue, e.exchange, e.routing_key) for e in retried] == [(QUEUE, "retry.acme.svc", f"retry.{QUEUE}")]


def test_the_store_retries_through_the_organizations_store_exchange() -> None:
    memory = broker()
    seen: list[str] = []

    def event_store(message: Any) -> Any:
        seen.append(message.message_type)
        return Failure(Error()) if len(seen) == 1 else isSuccess

    consumer = memory.consumer("svc")
    consumer.consume_store(event_store)
    memory.event_bus("svc").publish(UserCreated(user_id="1"))
    memory.run_until_idle()
    assert seen == ["user.created", "user.created"]
    retried = [entry for entry in memory.trace if isinstance(entry, Retried)]
    assert [(e.exchange, e.routing_key) for e in retried] == [("retry.acme.store", "retry.store")]


def test_petiscos_main_queue_ttl_dead_letters_a_backlog_nobody_consumes() -> None:
    memory = broker()
    memory.event_bus("svc").publish(UserCreated(user_id="1"))
    memory.advance(5000)
    depths = memory.depths()
    assert depths.get(QUEUE, 0) == 0
    assert depths[f"dead_letter.{QUEUE}"] == 1


def test_the_spec_runtime_follows_the_layout() -> None:
    handler = "send_mail_handler: {handler: 'tests.unit.memory_handlers:send_mail_handler'}"
    spec = parse_spec(SPEC.replace("send_mail_handler: {}", handler))
    [sub] = spec_subscriptions(spec, service="svc")
    assert (sub.queue, sub.layout) == (QUEUE, "petisco")
    consumer = InMemoryBroker.from_spec(spec).consumer_from_spec("svc")
    assert [(s.queue, s.layout) for s in consumer.subscriptions] == [(QUEUE, "petisco")]


def test_subscribers_in_code_compile_to_petiscos_layout() -> None:
    from bus_runtime.subscriber_spec import spec_for_subscribers
    from topology.compile.compiler import compile_spec

    spec = spec_for_subscribers(
        "acme", "svc", [EventSubscriber(UserCreated, [failing([])])], store=True, layout="petisco"
    )
    queues = {q.name: q for q in compile_spec(spec).queues}
    assert queues[QUEUE].arguments["x-message-ttl"] == 5000
    assert "retry.store" in queues


def test_the_in_memory_broker_follows_the_specs_main_queue_ttl() -> None:
    text = SPEC.replace("defaults: {", "defaults: {main_queue_ttl_ms: 60000, ").replace(
        "store: {}", "store: {main_queue_ttl_ms: none}"
    )
    memory = InMemoryBroker.from_spec(parse_spec(text))
    memory.event_bus("svc").publish(UserCreated(user_id="1"))
    memory.advance(59_999)
    assert memory.depths()[QUEUE] == 1
    memory.advance(1)
    assert memory.depths().get(QUEUE, 0) == 0
    assert memory.depths()[f"dead_letter.{QUEUE}"] == 1
    memory.advance(3_600_000)
    assert memory.depths()["store"] == 1  # no TTL: the store keeps its backlog


def test_subscribers_in_code_take_petiscos_main_queue_ttl() -> None:
    """The configurer's `main_ttl` is petisco's `QueueConfig.default_main_ttl` (None: no TTL)."""
    subscribers = [EventSubscriber(UserCreated, [failing([])])]
    for main_ttl, expected in ((3000, 3000), (None, None)):
        spec = spec_for_subscribers("acme", "svc", subscribers, store=True, layout="petisco", main_ttl=main_ttl)
        queues = {q.name: q for q in compile_spec(spec).queues}
        assert queues[QUEUE].arguments.get("x-message-ttl") == expected
        assert queues["store"].arguments.get("x-message-ttl") == expected
    connector = RabbitMqConnector(url="amqp://guest:guest@127.0.0.1:5672/")
    configurer = RabbitMqEventConfigurer(connector, "acme", "svc", layout="petisco", main_ttl=None)
    assert (
        "x-message-ttl" not in {q.name: q for q in compile_spec(configurer.spec(subscribers)).queues}[QUEUE].arguments
    )
    with pytest.raises(ValueError, match="layout petisco only"):
        RabbitMqEventConfigurer(connector, "acme", "svc", main_ttl=3000)
    with pytest.raises(ValueError, match=">= 1 ms"):
        spec_for_subscribers("acme", "svc", subscribers, layout="petisco", main_ttl=0)
