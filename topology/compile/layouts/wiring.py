"""What both layouts wire alike: a subscriber's queues bound to its service's exchanges.

The layouts differ only in the queues' arguments, so each passes its own queue builder.
"""

from __future__ import annotations

from collections.abc import Callable

from topology import naming
from topology.compile.objects import Binding, Queue
from topology.spec.model import ResolvedStore, ResolvedSubscriber

QueueTrio = Callable[[ResolvedSubscriber | ResolvedStore, tuple[str, str, str], str, tuple[str, str]], list[Queue]]
"""(owner, (main, retry, dead-letter) names, dead-letter exchange, (exchange, routing key) back) -> the queues."""


def subscriber_objects(org: str, sub: ResolvedSubscriber, queues: QueueTrio) -> tuple[list[Queue], list[Binding]]:
    """The subscriber's queue and its retry and dead-letter twins, bound to the service's main,
    retry and dead-letter exchanges; a retry comes back through the main exchange."""
    main_exchange, retry_exchange, dead_letter_exchange = naming.service_exchanges(org, sub.service)
    queue = sub.queue
    retry = naming.retry_queue(queue)
    dead = naming.dead_letter_queue(queue)
    bindings = [
        Binding(main_exchange, queue, sub.routing_key),
        Binding(main_exchange, queue, retry),
        Binding(retry_exchange, retry, retry),
        Binding(dead_letter_exchange, dead, dead),
        *tier_bindings(retry_exchange, queue, len(sub.retry.ladder())),
    ]
    return queues(sub, (queue, retry, dead), dead_letter_exchange, (main_exchange, retry)), bindings


def tier_bindings(retry_exchange: str, queue: str, tiers: int) -> list[Binding]:
    """A ladder's further tiers (2..k) are bound to the retry exchange by their own names; they
    all expire back along tier 1's route, so they need no binding of their own on the way back."""
    return [Binding(retry_exchange, name, name) for name in naming.retry_tier_queues(queue, tiers)[1:]]


def tier_queues(retry: Queue, queue: str, ladder: tuple[int, ...]) -> list[Queue]:
    """Tier 1 is `retry` with the first delay; every further tier is a copy of it with its own
    name and TTL (same dead-letter route back, same quorum settings)."""
    names = naming.retry_tier_queues(queue, len(ladder))
    return [
        Queue(name, retry.durable, retry.auto_delete, {**retry.arguments, "x-message-ttl": delay})
        for name, delay in zip(names, ladder, strict=True)
    ]
