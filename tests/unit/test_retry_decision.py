"""The retry decision as a pure function: ack, retry with our own count, dead-letter with reasons."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

from bus_runtime import retry
from bus_runtime.retry import Delivery, Failure, decide

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
QUEUE = "alice.petisco.1.event.user.created.send_mail_handler"
BOOM = Failure("ValueError", "boom")


def delivery(headers: dict[str, object] | None = None, queue: str = QUEUE) -> Delivery:
    return Delivery("alice", "petisco", queue, "send_mail_handler", "alice.petisco.1.event.user.created", headers or {})


def test_success_acks() -> None:
    assert decide(delivery(), None, 5, NOW).action == "ack"


def test_first_failure_goes_to_the_retry_exchange_with_the_queue_retry_key() -> None:
    decision = decide(delivery(), BOOM, 5, NOW)
    assert decision.action == "retry"
    assert decision.exchange == "retry.alice.petisco"
    assert decision.routing_key == f"retry.{QUEUE}"
    assert decision.headers[retry.RETRY_COUNT] == 1
    assert decision.headers[retry.ERROR_TYPE] == "ValueError"
    assert decision.headers[retry.ERROR_MESSAGE] == "boom"
    assert decision.headers[retry.HANDLER] == "send_mail_handler"
    assert decision.headers[retry.ORIGINAL_QUEUE] == QUEUE
    assert not any(key.startswith("x-") for key in decision.headers)


def test_retries_are_counted_in_our_header_until_max_retries_then_dead_letter() -> None:
    headers: dict[str, object] = {}
    actions = []
    for _ in range(4):  # max_retries=2: calls 1 and 2 retry, call 3 dead-letters
        decision = decide(delivery(headers), BOOM, 2, NOW)
        actions.append(decision.action)
        headers = dict(decision.headers)
        if decision.action == "dead_letter":
            break
    assert actions == ["retry", "retry", "dead_letter"]
    assert headers[retry.RETRY_COUNT] == 2
    assert headers[retry.DEAD_LETTER_REASON] == retry.REASON_RETRIES_EXHAUSTED


def test_dead_letter_names_its_queue_and_keeps_first_failure_time() -> None:
    first = decide(delivery(), BOOM, 1, NOW)
    later = NOW + timedelta(seconds=5)
    last = decide(delivery(dict(first.headers)), Failure("KeyError", "gone"), 1, later)
    assert last.action == "dead_letter"
    assert last.exchange == "dead_letter.alice.petisco"
    assert last.routing_key == f"dead_letter.{QUEUE}"
    assert last.headers[retry.FIRST_FAILURE_AT] == NOW.isoformat()
    assert last.headers[retry.LAST_FAILURE_AT] == later.isoformat()
    assert last.headers[retry.ERROR_TYPE] == "KeyError"
    assert last.headers[retry.ORIGINAL_ROUTING_KEY] == "alice.petisco.1.event.user.created"


def test_max_retries_zero_dead_letters_on_the_first_failure() -> None:
    assert decide(delivery(), BOOM, 0, NOW).action == "dead_letter"


def test_poison_goes_to_dead_letter_at_once() -> None:
    decision = decide(delivery(), Failure("PoisonMessage", "body is not JSON", poison=True), 5, NOW)
    assert decision.action == "dead_letter"
    assert decision.headers[retry.DEAD_LETTER_REASON] == retry.REASON_POISON
    assert decision.headers[retry.RETRY_COUNT] == 0


def test_caller_headers_travel_with_the_retry() -> None:
    decision = decide(delivery({"traceparent": "00-abc-def-01"}), BOOM, 5, NOW)
    assert decision.headers["traceparent"] == "00-abc-def-01"


def test_a_malformed_retry_count_counts_as_zero() -> None:
    assert retry.retry_count({retry.RETRY_COUNT: "many"}) == 0
    assert retry.retry_count({retry.RETRY_COUNT: -3}) == 0
    assert retry.retry_count(None) == 0
    assert decide(delivery({retry.RETRY_COUNT: "x"}), BOOM, 5, NOW).headers[retry.RETRY_COUNT] == 1


def test_long_error_messages_are_truncated() -> None:
    decision = decide(delivery(), Failure("E", "x" * 5000), 5, NOW)
    assert len(decision.headers[retry.ERROR_MESSAGE]) == retry.MAX_ERROR_MESSAGE


def test_store_retries_through_the_service_retry_exchange() -> None:
    decision = decide(delivery(queue="store"), BOOM, 5, NOW)
    assert (decision.exchange, decision.routing_key) == ("retry.alice.petisco", "retry.store")


def test_a_delivery_limit_dead_letter_reads_like_an_exhausted_retry() -> None:
    from bus_runtime.retry import dead_letter_reason

    assert dead_letter_reason({"rabbitform-dead-letter-reason": "retries_exhausted"}) == "retries_exhausted"
    broker = {
        "x-death": [{"reason": "delivery_limit", "queue": "q", "count": 1}],
        "x-first-death-reason": "delivery_limit",
    }
    assert dead_letter_reason(broker) == "delivery_limit"
    assert dead_letter_reason({"x-first-death-reason": "expired"}) == "expired"
    assert dead_letter_reason({}) is None

    from bus_runtime.deadletters.model import DeadLetter

    letter = DeadLetter(0, "m-1", "user.created", "dead_letter.q", headers=broker)
    assert letter.reason == "delivery_limit"  # `rabbitform dlq` lists and filters it as such


def test_retry_k_goes_to_its_ladder_tier_and_the_last_tier_repeats() -> None:
    ladder = replace(delivery(), attempt_tiers=(1, 2, 3, 3))
    keys = [
        decide(replace(ladder, headers={retry.RETRY_COUNT: done}), Failure("E", "x"), 6, NOW).routing_key
        for done in range(6)
    ]
    assert keys == [f"retry.{QUEUE}", f"retry.{QUEUE}.2", f"retry.{QUEUE}.3", *[f"retry.{QUEUE}.3"] * 3]


def test_a_listed_error_class_or_its_subclass_skips_retries() -> None:
    classes = ("billing.errors:CardExpired", "billing.errors:PaymentDeclined", "builtins:Exception")
    failure = Failure("CardExpired", "expired", classes=classes, traceback="Traceback ...\nCardExpired: expired\n")
    for rules in (("PaymentDeclined",), ("billing.errors:PaymentDeclined",), ("CardExpired",)):
        decision = decide(replace(delivery(), dead_letter_on=rules), failure, 5, NOW)
        assert decision.action == "dead_letter"
        assert decision.headers[retry.DEAD_LETTER_REASON] == retry.REASON_NON_RETRYABLE
        assert decision.headers[retry.TRACEBACK].endswith("CardExpired: expired\n")
    for rules in ((), ("other.module:PaymentDeclined",), ("Declined",)):
        assert decide(replace(delivery(), dead_letter_on=rules), failure, 5, NOW).action == "retry"


def test_the_traceback_keeps_its_last_4_kb_and_rides_only_on_the_dead_letter() -> None:
    failure = Failure("E", "x", traceback="é" * 5000 + "where it raised")
    assert retry.TRACEBACK not in decide(delivery(), failure, 1, NOW).headers
    dead = decide(delivery({retry.RETRY_COUNT: 1}), failure, 1, NOW).headers[retry.TRACEBACK]
    assert dead.endswith("where it raised") and len(dead.encode()) <= retry.MAX_TRACEBACK
