"""A BaseException raised by a handler is decided as the handler's failure and logged as such,
not as an internal error with a traceback; a bug outside the handler still gets one."""

from __future__ import annotations

import logging

import pika
import pytest
from meiga import isSuccess

from bus_runtime import Event, EventSubscriber
from bus_runtime.consumer import RabbitMqEventConsumer, _Work
from bus_runtime.subscriber import subscriptions


class UserCreated(Event):
    user_id: str


class Cancelled(BaseException):
    pass


def send_mail(_event: UserCreated) -> object:
    return isSuccess


def work() -> _Work:
    [sub] = subscriptions("acme", "users", [EventSubscriber(UserCreated, [send_mail])], 3)
    return _Work(0, sub, 1, "acme.users.1.event.user.created", pika.BasicProperties(headers={}), b"{}")


def test_a_base_exception_from_a_handler_is_its_failure_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "bus_runtime.consumer"):
        decision = RabbitMqEventConsumer._unexpected(Cancelled("the job was cancelled"), work())
    assert decision.action == "retry"
    [record] = caplog.records
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert "send_mail raised Cancelled (the job was cancelled)" in record.getMessage()


def test_a_bug_outside_the_handler_is_an_error_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "bus_runtime.consumer"):
        RabbitMqEventConsumer._unexpected(RuntimeError("bug"), work())
    [record] = caplog.records
    assert record.levelno == logging.ERROR and record.exc_info is not None
