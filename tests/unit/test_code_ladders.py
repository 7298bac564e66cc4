"""Ladders, errors that skip retries and the circuit breaker for handlers wired in code (no
spec): `EventSubscriber(..., retry=Retries(...), circuit_breaker=BreakerSettings(...))` gives
the consumer the same subscriptions a spec would, and `spec_for_subscribers` the same tiers."""

from __future__ import annotations

from typing import Any

import pytest
from meiga import Error, Failure, Result

from bus_runtime import BreakerSettings, EventSubscriber, Retries, retry
from bus_runtime.memory import BreakerChanged, Delivered, InMemoryBroker
from bus_runtime.subscriber import subscriptions
from bus_runtime.subscriber_spec import spec_for_subscribers
from topology import naming

from . import memory_handlers
from .memory_handlers import CardExpired, PaymentDeclined, UserCreated

Q = "alice.petisco.1.event.user.created.{}"
seen: list[str] = []


def audit_handler(event: UserCreated) -> Result[bool, Error]:
    seen.append("audit")
    raise TimeoutError("billing did not answer")


def pay_handler(event: UserCreated) -> Result[bool, Error]:
    seen.append("pay")
    return Failure(CardExpired("card expired"))


def broker_with(*subscribers: EventSubscriber) -> InMemoryBroker:
    broker = InMemoryBroker.from_spec(spec_for_subscribers("alice", "petisco", subscribers))
    broker.consumer("petisco", subscribers)
    return broker


def test_a_ladder_and_dead_letter_on_given_in_code_run_on_the_tiers_the_topology_has() -> None:
    seen.clear()
    ladder = Retries(delays_ms=[1000, 10000], max_retries=3, dead_letter_on=[PaymentDeclined])
    broker = broker_with(
        EventSubscriber(UserCreated, [audit_handler], retry=ladder),
        EventSubscriber(UserCreated, [pay_handler], retry=ladder),
    )
    broker.event_bus("petisco").publish(UserCreated(user_id="1"))
    broker.run_until_idle()
    audit = Q.format("audit_handler")
    times = [e.at_ms for e in broker.trace if isinstance(e, Delivered) and e.handler == "audit_handler"]
    assert times == [0, 1000, 11000, 21000]  # attempt k waits the k-th delay, the last repeats
    assert {naming.retry_tier_queue(audit, 1), naming.retry_tier_queue(audit, 2)} <= set(broker.queue_names)
    [dead] = broker.messages(naming.dead_letter_queue(audit))
    assert dead.headers[retry.DEAD_LETTER_REASON] == retry.REASON_RETRIES_EXHAUSTED
    [declined] = broker.messages(naming.dead_letter_queue(Q.format("pay_handler")))
    assert declined.headers[retry.DEAD_LETTER_REASON] == retry.REASON_NON_RETRYABLE  # a subclass, no retry
    assert seen.count("pay") == 1


def test_a_circuit_breaker_given_in_code_pauses_its_subscriber_only() -> None:
    memory_handlers.seen.clear()
    memory_handlers.dependency_up["value"] = False
    breaker = BreakerSettings(failures=2, window_s=10, pause_s=30)
    broker = broker_with(
        EventSubscriber(
            UserCreated, [memory_handlers.needs_dependency], retry=Retries([100_000]), circuit_breaker=breaker
        ),
        EventSubscriber(UserCreated, [memory_handlers.send_mail_handler]),
    )
    broker.event_bus("petisco").publish([UserCreated(user_id=str(i)) for i in range(4)])
    broker.advance(0)
    assert memory_handlers.seen["needs_dependency"] == 2  # two failures opened it
    assert memory_handlers.seen["send_mail_handler"] == 4
    memory_handlers.dependency_up["value"] = True
    broker.advance(30_000)  # half-open: the probe succeeds, closed, the rest follow
    assert memory_handlers.seen["needs_dependency"] == 4
    moves = [e.to for e in broker.trace if isinstance(e, BreakerChanged)]
    assert moves == ["open", "half_open", "closed"]


def test_without_retries_a_subscriber_compiles_and_subscribes_as_before() -> None:
    plain = EventSubscriber(UserCreated, [audit_handler])
    [sub] = subscriptions("alice", "petisco", [plain], 5)
    assert (sub.max_retries, sub.attempt_tiers, sub.dead_letter_on, sub.circuit_breaker) == (5, (1,), (), None)
    spec = spec_for_subscribers("alice", "petisco", [plain])
    [resolved] = spec.subscribers()
    assert resolved.retry.ladder() == (5000,) and resolved.circuit_breaker is None


def test_dead_letter_on_takes_classes_as_their_import_paths_and_names_as_given() -> None:
    rules = Retries(dead_letter_on=[PaymentDeclined, "InvalidCard"]).rules()
    assert rules == ("tests.unit.memory_handlers:PaymentDeclined", "InvalidCard")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"delays_ms": [0]}, "delays_ms must be whole milliseconds >= 1"),
        ({"delays_ms": [1.5]}, "delays_ms must be whole milliseconds >= 1"),
        ({"max_retries": -1}, "max_retries must be >= 0"),
        ({"dead_letter_on": [42]}, "dead_letter_on takes exception classes or their names"),
    ],
)
def test_a_bad_policy_is_refused_in_one_line(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        Retries(**arguments)


def test_a_ladder_on_the_petisco_layout_is_refused_in_one_line() -> None:
    ladder = EventSubscriber(UserCreated, [audit_handler], retry=Retries([1000, 5000]))
    with pytest.raises(ValueError, match="audit_handler: layout petisco has one retry queue per subscriber"):
        subscriptions("alice", "petisco", [ladder], 5, "petisco")
