"""Handlers that specs in the in-memory broker tests name by import path."""

from __future__ import annotations

from collections import Counter
from typing import Any

from meiga import Error, Failure, Result, isSuccess

from bus_runtime import Event

seen: Counter[str] = Counter()


class UserCreated(Event):
    user_id: str


class MailError(Error):
    def __init__(self, message: str) -> None:
        self.message = message


def send_mail_handler(event: UserCreated) -> Result[bool, Error]:
    seen["send_mail_handler"] += 1
    return isSuccess


def always_fails(event: Any) -> Result[bool, Error]:
    seen["always_fails"] += 1
    return Failure(MailError("smtp is down"))


def event_store(event: Any) -> Result[bool, Error]:
    seen["event_store"] += 1
    return isSuccess


class PaymentDeclined(Error):
    def __init__(self, message: str) -> None:
        self.message = message


class CardExpired(PaymentDeclined):
    pass


def declines(event: Any) -> Result[bool, Error]:
    seen["declines"] += 1
    return Failure(CardExpired("card expired"))


def gives_up(event: Any) -> Result[bool, Error]:
    from bus_runtime.errors import NonRetryableError

    seen["gives_up"] += 1
    raise NonRetryableError("no such account")


dependency_up = {"value": False}


def needs_dependency(event: Any) -> Result[bool, Error]:
    seen["needs_dependency"] += 1
    if not dependency_up["value"]:
        raise ConnectionError("billing is down")
    return isSuccess
