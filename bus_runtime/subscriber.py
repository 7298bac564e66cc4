"""Subscribers: which handlers run for which message, and on which queue.

`EventSubscriber(UserCreated, [send_mail_handler, notify_handler])` gives each handler its own
queue, named by the function's `__name__`, so each has its own retries: one handler's failure
never re-delivers the event to the others.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bus_runtime.breaker import BreakerSettings
from bus_runtime.message import Message
from topology import naming

Handler = Callable[..., Any]  # (message) -> meiga Result; anything else counts as a failure


@dataclass(frozen=True)
class EventSubscriber:
    """Handlers for one message class. `service` is the service that publishes the message
    (its exchange and queue prefix); by default the consumer's own service."""

    message_class: type[Message]
    handlers: Sequence[Handler]
    service: str | None = None

    def __init__(
        self,
        message_class: type[Message] | Message,
        handlers: Sequence[Handler] | Handler,
        service: str | None = None,
    ) -> None:
        if isinstance(message_class, Message):  # the seed passes an instance: its class is meant
            message_class = type(message_class)
        object.__setattr__(self, "message_class", message_class)
        object.__setattr__(self, "handlers", tuple(handlers) if isinstance(handlers, Iterable) else (handlers,))
        object.__setattr__(self, "service", service)


CommandSubscriber = EventSubscriber


class SubscriptionGuard(Protocol):
    """Wraps a subscription's handler (e.g. `bus_runtime.outbox.Inbox`: its handler's writes and
    the record of the message in one transaction)."""

    def guard(self, subscription: Subscription) -> Subscription: ...


class BatchTransaction(Protocol):
    """One transaction for several deliveries of one subscription (an inbox's): the guarded
    handler, called inside it (`with`, or `async with` on an event loop), joins it instead of
    opening its own. Leaving it without an exception commits; a failed commit raises."""

    def __enter__(self) -> object: ...

    def __exit__(self, *exc: object) -> None: ...

    async def __aenter__(self) -> object: ...

    async def __aexit__(self, *exc: object) -> None: ...


BatchOpener = Callable[[Sequence[str | None]], BatchTransaction]
"""Opens a `BatchTransaction` for deliveries with these message ids (None: not known before parsing)."""


@dataclass(frozen=True)
class Subscription:
    """One handler bound to one queue, with everything the consumer loop needs."""

    organization: str
    service: str  # whose retry/dead-letter exchanges serve this queue
    queue: str
    handler: Handler
    handler_name: str
    message_class: type[Message] | None  # None: any message (the store)
    max_retries: int
    layout: naming.Layout = naming.DEFAULT_LAYOUT
    attempt_tiers: tuple[int, ...] = (1,)  # the retry ladder's tier of retry 1..n (the spec's ladder)
    dead_letter_on: tuple[str, ...] = ()  # error classes that skip retries (name or module:name)
    circuit_breaker: BreakerSettings | None = None
    # set by a guard whose handler can share a transaction across deliveries (an inbox): the
    # consumer hands it up to `batch_limit` deliveries at a time, several batches at once
    # unless `batch_parallel` is False (a database with one writer: they would only queue)
    batch: BatchOpener | None = None
    batch_limit: int = 1
    batch_parallel: bool = True


def wants_session(handler: Handler) -> bool:
    """Whether the handler declares a second parameter `session` (it runs with an inbox)."""
    target = handler.func if isinstance(handler, functools.partial) else handler
    try:
        parameters = list(inspect.signature(target).parameters)
    except (TypeError, ValueError):
        return False
    return parameters[1:2] == ["session"]


def handler_name(handler: Handler) -> str:
    name = getattr(handler, "__name__", None)
    if not name or not naming.SUBSCRIBER_PATTERN.match(name):
        raise ValueError(
            f"handler {handler!r} needs a __name__ like 'send_mail_handler' (lower case, digits, '_'): "
            "it names the handler's queue"
        )
    return name


def subscriptions(
    organization: str,
    service: str,
    subscribers: Iterable[EventSubscriber],
    max_retries: int,
    layout: naming.Layout = naming.DEFAULT_LAYOUT,
) -> list[Subscription]:
    """Expand subscribers into one subscription per handler (one queue each)."""
    result: list[Subscription] = []
    for subscriber in subscribers:
        cls = subscriber.message_class
        owner = subscriber.service or service
        for handler in subscriber.handlers:
            name = handler_name(handler)
            routing_name = naming.routing_name(cls.__name__, layout) if layout != "rabbitform" else cls.message_name()
            queue = naming.subscriber_queue(organization, owner, cls.version, cls.message_kind, routing_name, name)
            result.append(Subscription(organization, owner, queue, handler, name, cls, max_retries, layout))
    return result


def store_subscription(
    organization: str,
    service: str,
    handler: Handler,
    max_retries: int,
    queue: str = naming.DEFAULT_STORE_QUEUE,
    layout: naming.Layout = naming.DEFAULT_LAYOUT,
) -> Subscription:
    """The store hears every message; its retries go through `service`'s retry exchange
    (petisco's layout: `retry.<org>.store`)."""
    return Subscription(organization, service, queue, handler, handler_name(handler), None, max_retries, layout)
