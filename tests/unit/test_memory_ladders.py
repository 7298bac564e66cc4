"""Retry ladders, errors that skip retries and the circuit breaker on the in-memory broker's
virtual clock: the same subscriptions `from_spec` builds for RabbitMQ."""

from __future__ import annotations

from bus_runtime import retry
from bus_runtime.memory import BreakerChanged, Delivered, InMemoryBroker
from topology.spec.loader import parse_spec

from . import memory_handlers
from .memory_handlers import UserCreated

Q = "alice.petisco.1.event.user.created.{}"


def broker_for(subscribers: str, defaults: str = "{}") -> InMemoryBroker:
    text = f"""organization: alice
defaults: {defaults}
services:
  petisco:
    events:
      UserCreated:
        subscribers:
{subscribers}
"""
    broker = InMemoryBroker.from_spec(parse_spec(text))
    broker.consumer_from_spec()
    return broker


def test_attempt_k_waits_the_kth_delay_then_the_last_repeats() -> None:
    memory_handlers.seen.clear()
    broker = broker_for(
        '          audit_handler:\n            handler: "tests.unit.memory_handlers:always_fails"\n'
        "            retry: {delays_ms: [1000, 10000, 60000], max_retries: 4}"
    )
    broker.event_bus("petisco").publish(UserCreated(user_id="1"))
    broker.run_until_idle()
    times = [e.at_ms for e in broker.trace if isinstance(e, Delivered)]
    assert times == [0, 1000, 11000, 71000, 131000]
    queues = [e.queue for e in broker.trace if type(e).__name__ == "Routed" and e.queue.startswith("retry.")]
    name = Q.format("audit_handler")
    assert queues == [f"retry.{name}", f"retry.{name}.2", f"retry.{name}.3", f"retry.{name}.3"]
    [dead] = broker.messages(f"dead_letter.{name}")
    assert dead.headers[retry.DEAD_LETTER_REASON] == retry.REASON_RETRIES_EXHAUSTED
    assert dead.headers[retry.RETRY_COUNT] == 4


def test_dead_letter_on_matches_a_subclass_and_skips_every_retry() -> None:
    memory_handlers.seen.clear()
    broker = broker_for(
        '          pay_handler:\n            handler: "tests.unit.memory_handlers:declines"\n'
        "            retry: {dead_letter_on: [PaymentDeclined]}\n"
        '          close_handler: {handler: "tests.unit.memory_handlers:gives_up"}'
    )
    broker.event_bus("petisco").publish(UserCreated(user_id="1"))
    broker.run_until_idle()
    assert memory_handlers.seen == {"declines": 1, "gives_up": 1}
    assert broker.now_ms == 0
    for handler, error in (("pay_handler", "CardExpired"), ("close_handler", "NonRetryableError")):
        [dead] = broker.messages(f"dead_letter.{Q.format(handler)}")
        assert dead.headers[retry.DEAD_LETTER_REASON] == retry.REASON_NON_RETRYABLE
        assert dead.headers[retry.ERROR_TYPE] == error
        assert dead.headers[retry.RETRY_COUNT] == 0
    [raised] = broker.messages(f"dead_letter.{Q.format('close_handler')}")
    assert raised.headers[retry.TRACEBACK].endswith("NonRetryableError: no such account\n")
    assert raised.headers[retry.HOST] and raised.headers[retry.PID]


def test_an_open_breaker_pauses_one_subscriber_and_a_probe_closes_it() -> None:
    memory_handlers.seen.clear()
    memory_handlers.dependency_up["value"] = False
    broker = broker_for(
        '          bill_handler:\n            handler: "tests.unit.memory_handlers:needs_dependency"\n'
        "            retry: {delay_ms: 100000, max_retries: 5}\n"
        "            circuit_breaker: {failures: 3, window_s: 10, pause_s: 30}\n"
        '          send_mail_handler: {handler: "tests.unit.memory_handlers:send_mail_handler"}'
    )
    bus = broker.event_bus("petisco")
    bus.publish([UserCreated(user_id=str(i)) for i in range(6)])
    broker.advance(0)
    # three failures open it: the other three wait in the queue, not counted as attempts
    assert memory_handlers.seen["needs_dependency"] == 3
    assert memory_handlers.seen["send_mail_handler"] == 6  # the other subscriber is not affected
    assert len(broker.messages(Q.format("bill_handler"))) == 3
    broker.advance(29_999)
    assert memory_handlers.seen["needs_dependency"] == 3
    broker.advance(1)  # half-open: one delivery goes through, fails: open again
    assert memory_handlers.seen["needs_dependency"] == 4
    memory_handlers.dependency_up["value"] = True
    broker.advance(30_000)  # the next probe succeeds: closed, the rest follow at once
    assert memory_handlers.seen["needs_dependency"] == 6
    moves = [(e.at_ms, e.to) for e in broker.trace if isinstance(e, BreakerChanged)]
    assert moves == [(0, "open"), (30_000, "half_open"), (30_000, "open"), (60_000, "half_open"), (60_000, "closed")]
    attempts = [e.attempt for e in broker.trace if isinstance(e, Delivered) and e.handler == "bill_handler"]
    assert attempts == [1] * 6


def test_dlq_show_tells_the_story_and_replay_starts_the_ladder_over() -> None:
    from bus_runtime.deadletters.render import render_letter

    memory_handlers.seen.clear()
    broker = broker_for(
        '          close_handler: {handler: "tests.unit.memory_handlers:gives_up"}\n'
        '          audit_handler:\n            handler: "tests.unit.memory_handlers:always_fails"\n'
        "            retry: {delays_ms: [10, 20], max_retries: 2}"
    )
    broker.event_bus("petisco").publish(UserCreated(user_id="1"))
    broker.run_until_idle()
    dlq = broker.dead_letters()
    reasons = {s.subscriber: dict(s.by_reason) for s in dlq.list()}
    assert reasons["petisco/close_handler"] == {"non_retryable": 1}
    [closed] = dlq.show("close_handler")
    text = render_letter(closed)
    assert "reason       non_retryable after 0 retries" in text
    assert f"handler      close_handler on {closed.host} (pid {closed.pid})" in text
    assert "traceback (last 4 KB):" in text and ", in gives_up" in text and "NonRetryableError: no such account" in text
    [audit] = dlq.show("audit_handler")
    assert (audit.retry_count, audit.reason) == (2, "retries_exhausted")
    dlq.replay("audit_handler")
    start = broker.now_ms
    broker.run_until_idle()
    replayed = [e for e in broker.trace if isinstance(e, Delivered) and e.handler == "audit_handler"][-3:]
    assert [(e.attempt, e.at_ms - start) for e in replayed] == [(1, 0), (2, 10), (3, 30)]


def test_the_readme_billing_example_runs_as_the_tour_shows() -> None:
    from pathlib import Path

    from examples.billing.handlers import OrderPlaced

    spec = Path(__file__).resolve().parents[2] / "specs" / "examples" / "billing.yaml"
    broker = InMemoryBroker.from_spec(spec)
    broker.consumer_from_spec()
    broker.event_bus("billing").publish(
        [OrderPlaced(order_id="o-17", card="expired"), OrderPlaced(order_id="o-18", card="timeout")]
    )
    broker.run_until_idle()
    dead = {letter.error_type: letter for letter in broker.dead_letters().show("charge_card_handler")}
    assert (dead["CardExpired"].reason, dead["CardExpired"].retry_count) == ("non_retryable", 0)
    assert (dead["TimeoutError"].reason, dead["TimeoutError"].retry_count) == ("retries_exhausted", 3)
    times = [e.at_ms for e in broker.trace if isinstance(e, Delivered) and e.attempt > 1]
    assert times == [500, 2500, 10500]
