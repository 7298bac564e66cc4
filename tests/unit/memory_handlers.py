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
