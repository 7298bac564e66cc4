"""Handlers the retry-ladder integration tests name in their specs: they record when they ran."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Any

from meiga import Error, Failure, Result, isSuccess

from bus_runtime.errors import NonRetryableError

calls: defaultdict[str, list[float]] = defaultdict(list)  # handler -> monotonic call times
dependency_up = threading.Event()
_lock = threading.Lock()


class PaymentDeclined(Error):
    def __init__(self, message: str) -> None:
        self.message = message


class CardExpired(PaymentDeclined):
    pass


def _called(name: str) -> None:
    with _lock:
        calls[name].append(time.monotonic())


def always_fails(event: Any) -> Result[bool, Error]:
    _called("always_fails")
    raise TimeoutError("billing did not answer")


def declines(event: Any) -> Result[bool, Error]:
    _called("declines")
    return Failure(CardExpired("card expired"))


def gives_up(event: Any) -> Result[bool, Error]:
    _called("gives_up")
    raise NonRetryableError("no such account")


def needs_dependency(event: Any) -> Result[bool, Error]:
    _called("needs_dependency")
    if not dependency_up.is_set():
        raise ConnectionError("billing is down")
    return isSuccess


def succeeds(event: Any) -> Result[bool, Error]:
    _called("succeeds")
    return isSuccess


async def always_fails_async(event: Any) -> Result[bool, Error]:
    _called("always_fails_async")
    raise TimeoutError("billing did not answer")


async def declines_async(event: Any) -> Result[bool, Error]:
    _called("declines_async")
    return Failure(CardExpired("card expired"))
