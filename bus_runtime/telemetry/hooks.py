"""Where the runtime reports what it does, for whichever instrumentations are installed.

The dispatch (handler calls and their outcome), the buses (messages published, confirmed or not)
and the consumers (reconnects) call these functions; `metrics` and `tracing` install an
`Instrumentation` each. With none installed every call is one check of an empty tuple.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

Outcome = str  # "ack" (handled), "retry", "dead_letter"


class Instrumentation(Protocol):
    """What an instrumentation may observe; every method must be cheap and never raise."""

    def handler_started(self, subscriber: str, headers: Mapping[str, Any]) -> Any:
        """Called before a handler runs; what it returns comes back to `handler_finished`."""

    def handler_finished(self, token: Any, subscriber: str, event: str, outcome: Outcome, seconds: float) -> None: ...

    def publishing(self, exchange: str, routing_key: str, message_type: str, headers: MutableMapping[str, Any]) -> None:
        """Called as each message is encoded for publishing; may add headers (e.g. `traceparent`)."""

    def published(self, exchange: str, confirmed: int, failed: int, reason: str | None) -> None: ...

    def reconnected(self, component: str, cause: str) -> None: ...

    # Optional (an instrumentation may leave them out): retries, dead letters, circuit breakers.
    # def retried(self, subscriber: str, tier: int) -> None
    # def dead_lettered(self, subscriber: str, reason: str) -> None
    # def breaker_moved(self, subscriber: str, to: str) -> None  (to: closed, half_open, open)


_installed: tuple[Instrumentation, ...] = ()
_lock = threading.Lock()


def install(instrumentation: Instrumentation) -> None:
    global _installed
    with _lock:
        if instrumentation not in _installed:
            _installed = (*_installed, instrumentation)


def uninstall(instrumentation: Instrumentation) -> None:
    global _installed
    with _lock:
        _installed = tuple(i for i in _installed if i is not instrumentation)


def active() -> bool:
    return bool(_installed)


@dataclass
class HandlerCall:
    """Filled in by the dispatch while a delivery is handled."""

    event: str = "unknown"  # the message's dotted name, once parsed
    outcome: Outcome = "error"


@contextlib.contextmanager
def handler_call(subscriber: str, headers: Mapping[str, Any]) -> Iterator[HandlerCall]:
    """Around the handling of one delivery: parse, handler, decision."""
    installed = _installed
    call = HandlerCall()
    if not installed:
        yield call
        return
    tokens = [i.handler_started(subscriber, headers) for i in installed]
    start = time.perf_counter()
    try:
        yield call
    finally:
        seconds = time.perf_counter() - start
        for instrumentation, token in zip(installed, tokens, strict=True):
            instrumentation.handler_finished(token, subscriber, call.event, call.outcome, seconds)


def publishing(exchange: str, routing_key: str, message_type: str, headers: MutableMapping[str, Any]) -> None:
    for instrumentation in _installed:
        instrumentation.publishing(exchange, routing_key, message_type, headers)


def published(exchange: str, confirmed: int, failed: int = 0, reason: str | None = None) -> None:
    for instrumentation in _installed:
        instrumentation.published(exchange, confirmed, failed, reason)


def reconnected(component: str, cause: str) -> None:
    for instrumentation in _installed:
        instrumentation.reconnected(component, cause)


def _optional(name: str) -> list[Any]:
    return [method for i in _installed if (method := getattr(i, name, None)) is not None]


def retried(subscriber: str, tier: int) -> None:
    """A failure was republished to retry tier `tier` (1-based) of the subscriber's ladder."""
    for method in _optional("retried"):
        method(subscriber, tier)


def dead_lettered(subscriber: str, reason: str) -> None:
    for method in _optional("dead_lettered"):
        method(subscriber, reason)


def breaker_moved(subscriber: str, to: str) -> None:
    """A subscriber's circuit breaker moved to `to` (closed, half_open, open)."""
    for method in _optional("breaker_moved"):
        method(subscriber, to)
