"""Handlers the differential suite's spec names by import path (run by both brokers' spec consumers)."""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from typing import Any

from meiga import Error, Failure, Result, isSuccess

from bus_runtime import Event

calls: Counter[str] = Counter()
times: defaultdict[str, list[float]] = defaultdict(list)  # handler -> monotonic call times
_lock = threading.Lock()


class UserCreated(Event):
    user_id: str


class MailError(Error):
    def __init__(self, message: str) -> None:
        self.message = message


def _count(name: str) -> int:
    with _lock:
        calls[name] += 1
        times[name].append(time.monotonic())
        return calls[name]


def send_mail_handler(event: UserCreated) -> Result[bool, Error]:
    """Fails on its first call, succeeds after."""
    return Failure(MailError("SMTP server busy")) if _count("send_mail_handler") == 1 else isSuccess


def audit_handler(event: UserCreated) -> Result[bool, Error]:
    _count("audit_handler")
    return Failure(MailError("audit log unavailable"))


def event_store(event: Any) -> Result[bool, Error]:
    _count("event_store")
    return isSuccess
