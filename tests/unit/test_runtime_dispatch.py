"""handle_delivery: parse, run the handler, decide; every failure mode becomes a decision."""

from __future__ import annotations

from typing import Any

from meiga import Error, Failure, isFailure, isSuccess

from bus_runtime import retry
from bus_runtime.dispatch import handle_delivery
from bus_runtime.message import Event
from bus_runtime.subscriber import EventSubscriber, store_subscription, subscriptions
from bus_runtime.wire import encode


class UserCreated(Event):
    user_id: str


class UserDeleted(Event):
    user_id: str


class MailError(Error):
    pass


def sub_for(handler: Any, max_retries: int = 3) -> Any:
    return subscriptions("alice", "petisco", [EventSubscriber(UserCreated, [handler])], max_retries)[0]


def body(event: Event) -> bytes:
    return encode(event, "alice", "petisco").body


def test_success_returns_ack_and_the_typed_message() -> None:
    seen: list[UserCreated] = []

    def send_mail_handler(event: UserCreated) -> Any:
        seen.append(event)
        return isSuccess

    event = UserCreated(user_id="42")
    decision, message = handle_delivery(sub_for(send_mail_handler), body(event), "rk", None)
    assert decision.action == "ack"
    assert isinstance(message, UserCreated) and message.user_id == "42" and message.id == event.id
    assert seen == [message]


def test_failure_result_exception_and_non_result_all_retry() -> None:
    def failing_handler(_e: Any) -> Any:
        return isFailure

    def typed_failure_handler(_e: Any) -> Any:
        return Failure(MailError())

    def raising_handler(_e: Any) -> Any:
        raise RuntimeError("smtp down")

    def none_handler(_e: Any) -> Any:
        return None

    data = body(UserCreated(user_id="1"))
    expected = {
        failing_handler: "Error",
        typed_failure_handler: "MailError",
        raising_handler: "RuntimeError",
        none_handler: "InvalidHandlerResult",
    }
    for handler, error_type in expected.items():
        decision, _ = handle_delivery(sub_for(handler), data, "rk", {})
        assert decision.action == "retry", handler
        assert decision.headers[retry.ERROR_TYPE] == error_type


def test_unparsable_body_and_unexpected_type_dead_letter_without_calling_the_handler() -> None:
    calls: list[Any] = []

    def send_mail_handler(e: Any) -> Any:
        calls.append(e)
        return isSuccess

    sub = sub_for(send_mail_handler)
    for data, reason in [
        (b"not json", "not JSON"),
        (b'{"data": 1}', '{"data"'),
        (body(UserDeleted(user_id="1")), "unexpected message type"),
        (b'{"data": {"type": "user.created", "version": 1, "attributes": {}}}', "user_id"),
    ]:
        decision, message = handle_delivery(sub, data, "rk", None)
        assert decision.action == "dead_letter"
        assert decision.headers[retry.DEAD_LETTER_REASON] == retry.REASON_POISON
        assert reason in decision.headers[retry.ERROR_MESSAGE]
        assert message is None
    assert calls == []


def test_the_store_accepts_any_message_as_a_generic_event() -> None:
    seen: list[Any] = []

    def event_store(e: Any) -> Any:
        seen.append(e)
        return isSuccess

    store = store_subscription("alice", "petisco", event_store, 2)
    decision, message = handle_delivery(store, body(UserDeleted(user_id="9")), "rk", None)
    assert decision.action == "ack"
    assert message is not None and message.message_type == "user.deleted"
    assert message.attributes == {"user_id": "9"}
