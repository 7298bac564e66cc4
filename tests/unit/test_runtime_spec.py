"""Spec-driven runtime: handlers by import path, per-subscriber retry policies, generic messages."""

from __future__ import annotations

from typing import Any

import pytest

from bus_runtime.message import Command, Event
from bus_runtime.spec_runtime import import_handler, message_class, message_from_spec, spec_subscriptions
from bus_runtime.subscriber import EventSubscriber
from bus_runtime.subscriber_spec import spec_for_subscribers
from examples.rabbitmq import handlers
from topology.compile.compiler import compile_spec
from topology.errors import RabbitformError
from topology.spec.loader import load_spec, parse_spec

SPEC = """
organization: alice
defaults: {retry: {delay_ms: 1000, max_retries: 4}}
services:
  petisco:
    events:
      UserCreated:
        subscribers:
          send_mail_handler: {handler: "examples.rabbitmq.handlers:send_mail_handler", retry: {max_retries: 1}}
          no_code_yet: {}
    commands:
      SendWelcome:
        version: 2
        subscribers:
          welcome_handler: {handler: "examples.rabbitmq.handlers:event_store"}
  billing:
    events:
      InvoicePaid:
        subscribers:
          book_handler: {handler: "examples.rabbitmq.handlers:event_store"}
store: {handler: "examples.rabbitmq.handlers:event_store", retry: {max_retries: 0}}
"""


def test_import_handler_and_its_errors() -> None:
    assert import_handler("examples.rabbitmq.handlers:send_mail_handler") is handlers.send_mail_handler
    with pytest.raises(RabbitformError, match="cannot import module 'nope'"):
        import_handler("nope:handler")
    with pytest.raises(RabbitformError, match="has no 'missing'"):
        import_handler("examples.rabbitmq.handlers:missing")
    with pytest.raises(RabbitformError, match="not callable"):
        import_handler("examples.rabbitmq.handlers:SERVICE")


def test_handlers_get_their_module_class_else_a_generic_one() -> None:
    assert message_class("UserCreated", "event", 1, handlers.send_mail_handler) is handlers.UserCreated
    generic = message_class("UserCreated", "event", 2, handlers.send_mail_handler)  # version differs
    assert generic is not handlers.UserCreated and generic.version == 2 and issubclass(generic, Event)
    command = message_class("SendWelcome", "command", 1, None)
    assert issubclass(command, Command) and command.message_name() == "send.welcome"


def test_spec_subscriptions_apply_filters_and_retry_policies() -> None:
    spec = parse_spec(SPEC)
    everything = {s.queue: s for s in spec_subscriptions(spec)}
    assert set(everything) == {
        "alice.petisco.1.event.user.created.send_mail_handler",
        "alice.petisco.2.command.send.welcome.welcome_handler",
        "alice.billing.1.event.invoice.paid.book_handler",
        "store",
    }
    assert everything["alice.petisco.1.event.user.created.send_mail_handler"].max_retries == 1
    assert everything["alice.petisco.2.command.send.welcome.welcome_handler"].max_retries == 4
    assert everything["store"].max_retries == 0 and everything["store"].message_class is None
    only = spec_subscriptions(spec, service="petisco", names=["send_mail_handler"])
    assert [s.handler_name for s in only] == ["send_mail_handler"]
    assert [s.queue for s in spec_subscriptions(spec, names=["store"])] == ["store"]
    assert {s.service for s in spec_subscriptions(spec, service="billing")} == {"billing"}


@pytest.mark.parametrize(
    ("service", "names", "message"),
    [
        ("nope", None, "service 'nope' is not in"),
        (None, ["no_code_yet"], "has no handler to run"),
        (None, ["ghost"], "no subscriber named ghost"),
    ],
)
def test_spec_subscriptions_errors(service: str | None, names: list[str] | None, message: str) -> None:
    with pytest.raises(RabbitformError, match=message):
        spec_subscriptions(parse_spec(SPEC), service, names)


def test_message_from_spec() -> None:
    spec = parse_spec(SPEC)
    message = message_from_spec(spec, "petisco", "SendWelcome", "command", {"user_id": "1"})
    assert message.routing_key("alice", "petisco") == "alice.petisco.2.command.send.welcome"
    assert message.attributes == {"user_id": "1"}
    with pytest.raises(RabbitformError, match=r"event 'Nope' is not declared .* \(declared: UserCreated\)"):
        message_from_spec(spec, "petisco", "Nope", "event", {})


def test_subscribers_in_code_compile_like_the_alice_spec() -> None:
    subscribers = [EventSubscriber(handlers.UserCreated, [handlers.send_mail_handler])]
    from_code = compile_spec(spec_for_subscribers("alice", "petisco", subscribers, retry_ttl=5000, store=True))
    from_yaml = compile_spec(load_spec("specs/alice.yaml"))
    assert from_code == from_yaml


def test_subscribers_of_another_service_and_commands() -> None:
    class SendWelcome(Command):
        user_id: str

    def welcome_handler(_c: Any) -> Any:
        return None

    spec = spec_for_subscribers(
        "alice", "mailer", [EventSubscriber(SendWelcome, [welcome_handler], service="petisco")], retry_ttl=100
    )
    assert sorted(spec.services) == ["mailer", "petisco"]
    [sub] = list(spec.subscribers())
    assert sub.queue == "alice.petisco.1.command.send.welcome.welcome_handler"
    assert sub.retry.delay_ms == 100


def test_subscriber_accepts_the_seed_s_event_instance() -> None:
    event = handlers.UserCreated(user_id="1")
    assert EventSubscriber(event, [handlers.send_mail_handler]).message_class is handlers.UserCreated
