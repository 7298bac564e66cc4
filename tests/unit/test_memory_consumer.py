"""The in-memory consumer: the shared dispatch and retry decision, carried out on the broker."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from meiga import Error, Failure, Result, isSuccess

from bus_runtime import Command, CommandSubscriber, Event, EventSubscriber, retry
from bus_runtime.errors import TopologyMissing, UnroutableError
from bus_runtime.memory import (
    DeadLettered,
    Handled,
    InMemoryBroker,
    Retried,
)
from tests.unit import memory_handlers
from topology.spec.loader import parse_spec

ALICE = Path(__file__).resolve().parents[2] / "specs" / "alice.yaml"
QUEUE = "alice.petisco.1.event.user.created.send_mail_handler"


class UserCreated(Event):
    user_id: str


class CreateUser(Command):
    name: str


class Boom(Error):
    def __init__(self, message: str) -> None:
        self.message = message


def flaky(name: str, failures: int) -> Callable[[Any], Result[bool, Error]]:
    """A handler called `name` that fails its first `failures` calls."""
    calls = {"n": 0}

    def handler(message: Any) -> Result[bool, Error]:
        calls["n"] += 1
        return Failure(Boom(f"failure {calls['n']}")) if calls["n"] <= failures else isSuccess

    handler.__name__ = name
    return handler


def broker_for(spec_text: str) -> InMemoryBroker:
    return InMemoryBroker.from_spec(parse_spec(spec_text))


SPEC = """
organization: alice
defaults: {retry: {delay_ms: 200, max_retries: 3}}
services:
  petisco:
    events:
      UserCreated:
        subscribers: {send_mail_handler: {}, notify_handler: {}}
    commands:
      CreateUser:
        subscribers: {create_user_handler: {}}
store: {queue: store}
"""


def test_success_is_acked_once() -> None:
    broker = broker_for(SPEC)
    broker.consumer("petisco", [EventSubscriber(UserCreated, [flaky("send_mail_handler", 0)])])
    broker.event_bus("petisco").publish(UserCreated(user_id="1"))
    broker.run_until_idle()
    assert broker.calls("send_mail_handler") == 1
    assert broker.depths() == {"alice.petisco.1.event.user.created.notify_handler": 1, "store": 1}


def test_fail_twice_then_succeed_waits_the_ttl_each_time() -> None:
    broker = broker_for(SPEC)
    broker.consumer("petisco", [EventSubscriber(UserCreated, [flaky("send_mail_handler", 2)])], max_retries=3)
    broker.event_bus("petisco").publish(UserCreated(user_id="1"))
    broker.run_until_idle()
    assert broker.calls("send_mail_handler") == 3
    assert broker.now_ms == 400
    retries = [e for e in broker.trace if isinstance(e, Retried)]
    assert [(e.retry, e.at_ms, e.routing_key) for e in retries] == [
        (1, 0, f"retry.{QUEUE}"),
        (2, 200, f"retry.{QUEUE}"),
    ]
    assert broker.depth(f"dead_letter.{QUEUE}") == 0


def test_step_by_step_the_message_waits_in_the_retry_queue() -> None:
    broker = broker_for(SPEC)
    broker.consumer("petisco", [EventSubscriber(UserCreated, [flaky("send_mail_handler", 1)])])
    broker.event_bus("petisco").publish(UserCreated(user_id="1"))
    broker.advance(0)
    [waiting] = broker.messages(f"retry.{QUEUE}")
    assert waiting.retry_count == 1
    assert waiting.headers[retry.ERROR_MESSAGE] == "failure 1"
    broker.advance(199)
    assert broker.depth(f"retry.{QUEUE}") == 1
    broker.advance(1)
    assert broker.depth(f"retry.{QUEUE}") == 0
    assert broker.calls("send_mail_handler") == 2


def test_always_failing_ends_in_the_dead_letter_queue_with_its_reason() -> None:
    broker = broker_for(SPEC)
    broker.consumer("petisco", [EventSubscriber(UserCreated, [flaky("send_mail_handler", 99)])], max_retries=2)
    broker.event_bus("petisco").publish(UserCreated(user_id="1"))
    broker.run_until_idle()
    assert broker.calls("send_mail_handler") == 3
    [dead] = broker.messages(f"dead_letter.{QUEUE}")
    assert dead.headers[retry.DEAD_LETTER_REASON] == retry.REASON_RETRIES_EXHAUSTED
    assert dead.headers[retry.RETRY_COUNT] == 2
    assert dead.headers[retry.ERROR_TYPE] == "Boom"
    assert dead.headers[retry.ERROR_MESSAGE] == "failure 3"
    assert dead.headers[retry.ORIGINAL_ROUTING_KEY] == "alice.petisco.1.event.user.created"
    assert dead.headers["x-death"][0]["count"] == 2  # two trips through the retry queue
    assert dead.decode(UserCreated).user_id == "1"
    [entry] = [e for e in broker.trace if isinstance(e, DeadLettered)]
    assert entry.reason == "retries_exhausted"


def test_poison_body_goes_straight_to_dead_letter_without_calling_the_handler() -> None:
    broker = broker_for(SPEC)
    handler = flaky("send_mail_handler", 0)
    broker.consumer("petisco", [EventSubscriber(UserCreated, [handler])])
    broker.publish("alice.petisco", "alice.petisco.1.event.user.created", b"not json")
    broker.run_until_idle()
    assert broker.calls(handler) == 0
    [dead] = broker.messages(f"dead_letter.{QUEUE}")
    assert dead.body == b"not json"
    assert dead.headers[retry.DEAD_LETTER_REASON] == retry.REASON_POISON
    [handled] = [e for e in broker.trace if isinstance(e, Handled)]
    assert (handled.called, handled.error_type) == (False, "PoisonMessage")


def test_a_handler_exception_is_a_failure() -> None:
    broker = broker_for(SPEC)

    def send_mail_handler(event: UserCreated) -> Result[bool, Error]:
        raise RuntimeError("bug")

    broker.consumer("petisco", [EventSubscriber(UserCreated, [send_mail_handler])], max_retries=0)
    broker.event_bus("petisco").publish(UserCreated(user_id="1"))
    broker.run_until_idle()
    [dead] = broker.messages(f"dead_letter.{QUEUE}")
    assert (dead.headers[retry.ERROR_TYPE], dead.headers[retry.ERROR_MESSAGE]) == ("RuntimeError", "bug")


def test_only_the_failing_subscriber_sees_a_retry() -> None:
    broker = broker_for(SPEC)
    send_mail, notify = flaky("send_mail_handler", 1), flaky("notify_handler", 0)
    broker.consumer("petisco", [EventSubscriber(UserCreated, [send_mail, notify])])
    broker.event_bus("petisco").publish(UserCreated(user_id="1"))
    broker.run_until_idle()
    assert broker.calls(send_mail) == 2
    assert broker.calls(notify) == 1
    assert broker.depths() == {"store": 1}


def test_the_store_hears_everything_and_retries_through_the_default_exchange() -> None:
    broker = broker_for(SPEC)
    consumer = broker.consumer("petisco")
    consumer.consume_store(flaky("event_store", 1), max_retries=1)
    broker.event_bus("petisco").publish(UserCreated(user_id="1"))
    broker.command_bus("petisco").publish(CreateUser(name="bob"))
    broker.run_until_idle()
    assert broker.calls("event_store", queue="store") == 3  # one failure, its retry, the command
    assert broker.depth("retry.store") == 0
    stored = [e for e in broker.trace if isinstance(e, Handled) and e.queue == "store"]
    assert [e.ok for e in stored] == [False, True, True]


def test_a_command_reaches_its_handler() -> None:
    broker = broker_for(SPEC)
    received: list[str] = []

    def create_user_handler(command: CreateUser) -> Result[bool, Error]:
        received.append(command.name)
        return isSuccess

    broker.consumer("petisco", [CommandSubscriber(CreateUser, [create_user_handler])])
    broker.command_bus("petisco").publish([CreateUser(name="bob"), CreateUser(name="eve")])
    broker.run_until_idle()
    assert received == ["bob", "eve"]


def test_buses_publish_only_their_kind_and_report_unroutable_messages() -> None:
    broker = broker_for(SPEC.replace("store: {queue: store}", ""))  # the store would hear anything
    with pytest.raises(TypeError):
        broker.event_bus("petisco").publish(CreateUser(name="bob"))  # type: ignore[arg-type]

    class UserDeleted(Event):
        user_id: str

    bus = broker.event_bus("petisco")
    lost = UserDeleted(user_id="1")
    assert bus.publish([UserCreated(user_id="1"), lost]) == [lost]
    assert bus.unroutable_count == 1
    with pytest.raises(UnroutableError, match=r"user\.deleted"):
        broker.event_bus("petisco", on_unroutable="raise").publish(lost)


def test_a_stopped_consumer_receives_nothing_until_started() -> None:
    broker = broker_for(SPEC)
    consumer = broker.consumer("petisco", [EventSubscriber(UserCreated, [flaky("send_mail_handler", 0)])])
    consumer.stop()
    broker.event_bus("petisco").publish(UserCreated(user_id="1"))
    broker.run_until_idle()
    assert broker.depth(QUEUE) == 1
    consumer.start()
    broker.run_until_idle()
    assert broker.calls("send_mail_handler") == 1


def test_a_handler_that_republishes_forever_is_stopped() -> None:
    broker = broker_for(SPEC)
    bus = broker.event_bus("petisco")

    def send_mail_handler(event: UserCreated) -> Result[bool, Error]:
        bus.publish(UserCreated(user_id=event.user_id))
        return isSuccess

    broker.consumer("petisco", [EventSubscriber(UserCreated, [send_mail_handler])])
    bus.publish(UserCreated(user_id="1"))
    with pytest.raises(Exception, match="still busy after 100 steps"):
        broker.run_until_idle(max_steps=100)


def test_consumer_from_spec_runs_the_named_handlers_with_their_retry_policies() -> None:
    memory_handlers.seen.clear()
    broker = broker_for(
        """
organization: alice
defaults: {retry: {delay_ms: 1000, max_retries: 5}}
services:
  petisco:
    events:
      UserCreated:
        subscribers:
          send_mail_handler: {handler: "tests.unit.memory_handlers:send_mail_handler"}
          audit_handler:
            handler: "tests.unit.memory_handlers:always_fails"
            retry: {delay_ms: 50, max_retries: 1}
store: {handler: "tests.unit.memory_handlers:event_store"}
"""
    )
    broker.consumer_from_spec()
    broker.event_bus("petisco").publish(memory_handlers.UserCreated(user_id="1"))
    broker.run_until_idle()
    assert memory_handlers.seen == {"send_mail_handler": 1, "always_fails": 2, "event_store": 1}
    assert broker.now_ms == 50
    assert broker.calls("audit_handler") == 2  # the subscriber's name, as the queue names it
    [dead] = broker.messages("dead_letter.alice.petisco.1.event.user.created.audit_handler")
    assert dead.headers[retry.HANDLER] == "audit_handler"
    assert dead.headers[retry.ERROR_MESSAGE] == "smtp is down"


def test_a_spec_handler_refuses_a_message_of_another_type_as_poison() -> None:
    broker = broker_for(
        """
organization: alice
services:
  petisco:
    events:
      UserCreated:
        subscribers:
          send_mail_handler: {handler: "tests.unit.memory_handlers:event_store"}
"""
    )
    broker.consumer_from_spec("petisco")

    body = b'{"data": {"type": "user.deleted", "version": 1, "attributes": {}}}'
    broker.publish("alice.petisco", "alice.petisco.1.event.user.created", body)
    broker.run_until_idle()
    [dead] = broker.messages(f"dead_letter.{QUEUE}")
    assert dead.headers[retry.DEAD_LETTER_REASON] == retry.REASON_POISON
    assert "unexpected message type 'user.deleted'" in dead.headers[retry.ERROR_MESSAGE]


def test_the_seed_spec_runs_its_own_handlers() -> None:
    broker = InMemoryBroker.from_spec(ALICE)
    assert {s.queue for s in broker.spec.subscribers()} == {QUEUE}  # type: ignore[union-attr]


def test_the_trace_tells_the_retry_story_in_order() -> None:
    broker = broker_for(SPEC.replace("store: {queue: store}", ""))
    broker.consumer("petisco", [EventSubscriber(UserCreated, [flaky("send_mail_handler", 1)])])
    broker.event_bus("petisco").publish(UserCreated(user_id="1"))
    broker.run_until_idle()
    kinds = [(type(e).__name__, e.at_ms) for e in broker.trace if getattr(e, "queue", QUEUE).endswith(QUEUE)]
    assert kinds == [
        ("Published", 0),
        ("Routed", 0),
        ("Delivered", 0),
        ("Handled", 0),
        ("Retried", 0),
        ("Routed", 0),  # into retry.<queue>
        ("Expired", 200),
        ("Routed", 200),  # back into <queue> alone
        ("Delivered", 200),
        ("Handled", 200),
    ]
    text = broker.format_trace()
    assert f"     200 ms  expired in retry.{QUEUE}: back through alice.petisco [retry.{QUEUE}]" in text
    assert f"-> queue retry.{QUEUE} (waits 200 ms)" in text


def test_a_consumer_of_a_queue_the_topology_lacks_is_refused_like_on_rabbitmq() -> None:
    broker = broker_for(SPEC)

    class UserDeleted(Event):
        user_id: str

    with pytest.raises(TopologyMissing, match=r"user\.deleted\.send_mail_handler"):
        broker.consumer("petisco", [EventSubscriber(UserDeleted, [flaky("send_mail_handler", 0)])])
