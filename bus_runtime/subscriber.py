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
from topology import ladder, naming

Handler = Callable[..., Any]  # (message) -> meiga Result; anything else counts as a failure


ErrorRule = str | type[BaseException]  # a class name, `module:Name`, or the class itself


@dataclass(frozen=True)
class Retries:
    """A subscriber's retry policy in code, the spec's `retry` for handlers wired without a spec.

    `delays_ms`: the ladder (attempt k waits the k-th delay, the last repeating); empty keeps
    the topology's one retry queue. `max_retries`: None takes the consumer's. `dead_letter_on`:
    failures of these classes (or subclasses) skip retries; a class is matched by its import path.
    The topology must have the tiers: `RabbitMqEventConfigurer` (and `spec_for_subscribers`)
    compile them from the same `EventSubscriber`.
    """

    delays_ms: tuple[int, ...] = ()
    max_retries: int | None = None
    dead_letter_on: tuple[ErrorRule, ...] = ()

    def __init__(
        self,
        delays_ms: Sequence[int] = (),
        max_retries: int | None = None,
        dead_letter_on: Sequence[ErrorRule] = (),
    ) -> None:
        delays = tuple(delays_ms)
        if any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in delays):
            raise ValueError(f"delays_ms must be whole milliseconds >= 1, not {list(delays_ms)!r}")
        if max_retries is not None and (isinstance(max_retries, bool) or max_retries < 0):
            raise ValueError("max_retries must be >= 0")
        for rule in dead_letter_on:
            if not (isinstance(rule, str) and rule) and not (
                isinstance(rule, type) and issubclass(rule, BaseException)
            ):
                raise TypeError(f"dead_letter_on takes exception classes or their names, not {rule!r}")
        object.__setattr__(self, "delays_ms", delays)
        object.__setattr__(self, "max_retries", max_retries)
        object.__setattr__(self, "dead_letter_on", tuple(dead_letter_on))

    def rules(self) -> tuple[str, ...]:
        """`dead_letter_on` as the decision matches it: names as given, classes as `module:qualname`."""
        return tuple(r if isinstance(r, str) else f"{r.__module__}:{r.__qualname__}" for r in self.dead_letter_on)

    def attempt_tiers(self, max_retries: int) -> tuple[int, ...]:
        """The ladder tier of each retry 1..max_retries (one tier without a ladder)."""
        if not self.delays_ms:
            return (1,)
        return ladder.attempt_tiers(ladder.attempt_delays(self.delays_ms, max_retries))


@dataclass(frozen=True)
class EventSubscriber:
    """Handlers for one message class. `service` is the service that publishes the message
    (its exchange and queue prefix); by default the consumer's own service. `retry` (a ladder,
    errors that skip retries) and `circuit_breaker` apply to each of its handlers, as a spec's
    subscriber settings do."""

    message_class: type[Message]
    handlers: Sequence[Handler]
    service: str | None = None
    retry: Retries | None = None
    circuit_breaker: BreakerSettings | None = None

    def __init__(
        self,
        message_class: type[Message] | Message,
        handlers: Sequence[Handler] | Handler,
        service: str | None = None,
        *,
        retry: Retries | None = None,
        circuit_breaker: BreakerSettings | None = None,
    ) -> None:
        if isinstance(message_class, Message):  # the seed passes an instance: its class is meant
            message_class = type(message_class)
        object.__setattr__(self, "message_class", message_class)
        object.__setattr__(self, "handlers", tuple(handlers) if isinstance(handlers, Iterable) else (handlers,))
        object.__setattr__(self, "service", service)
        object.__setattr__(self, "retry", retry)
        object.__setattr__(self, "circuit_breaker", circuit_breaker)


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
            policy = subscriber.retry
            retries = max_retries if policy is None or policy.max_retries is None else policy.max_retries
            if policy is not None and layout == "petisco" and len(set(policy.delays_ms)) > 1:
                raise ValueError(
                    f"{name}: layout petisco has one retry queue per subscriber; a ladder "
                    f"({list(policy.delays_ms)}) needs layout rabbitform"
                )
            result.append(
                Subscription(
                    organization,
                    owner,
                    queue,
                    handler,
                    name,
                    cls,
                    retries,
                    layout,
                    attempt_tiers=(1,) if policy is None else policy.attempt_tiers(retries),
                    dead_letter_on=() if policy is None else policy.rules(),
                    circuit_breaker=subscriber.circuit_breaker,
                )
            )
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
