"""The rabbitform layout: no TTL on subscriber queues, one store per spec, store retries by the
default exchange. docs/naming.md documents every object."""

from __future__ import annotations

from collections.abc import Iterator

from topology import naming
from topology.compile.layouts import wiring
from topology.compile.objects import Binding, Queue
from topology.compile.quorum import quorum_arguments
from topology.spec.model import ResolvedStore, ResolvedSubscriber

DEFAULT_EXCHANGE = ""


def subscriber_objects(org: str, sub: ResolvedSubscriber) -> tuple[list[Queue], list[Binding]]:
    return wiring.subscriber_objects(org, sub, _queues)


def store_objects(org: str, services: list[str], store: ResolvedStore) -> tuple[list[Queue], list[Binding]]:
    """The store hears every service; its retries and dead letters travel by the default exchange.

    The default exchange routes by queue name, so `retry.store` returns a message to the store
    alone without depending on any one service's exchange.
    """
    queue, retry, dead = naming.store_queues(store.queue)
    queues = _queues(store, (queue, retry, dead), DEFAULT_EXCHANGE, back=(DEFAULT_EXCHANGE, queue))
    bindings = list(_store_bindings(org, services, queue, retry, dead))
    for service in services:
        bindings.extend(wiring.tier_bindings(naming.retry_exchange(org, service), queue, len(store.retry.ladder())))
    return queues, bindings


def _queues(
    of: ResolvedSubscriber | ResolvedStore,
    names: tuple[str, str, str],
    dead_letter_exchange: str,
    back: tuple[str, str],
) -> list[Queue]:
    """A subscriber's or the store's three queues: the main queue dead-letters through
    `dead_letter_exchange` to the dead-letter queue; the retry queue holds a message for the
    retry delay, then dead-letters it `back` (exchange, routing key) to the main queue."""
    queue, retry, dead = names
    back_exchange, back_key = back
    kind, limit = of.queue_type, of.retry.delivery_limit
    ladder = of.retry.ladder()
    first_tier = Queue(
        retry,
        arguments={
            "x-message-ttl": ladder[0],
            "x-dead-letter-exchange": back_exchange,
            "x-dead-letter-routing-key": back_key,
            # every tier, like the main queue: a copy read off a retry queue by hand (or by a
            # stray consumer) and returned again and again stops at the limit too
            **quorum_arguments(kind, dead_letters=True, delivery_limit=limit),
        },
    )
    return [
        # No TTL on the main queue: a consumer outage must never dead-letter real work.
        Queue(
            queue,
            arguments={
                "x-dead-letter-exchange": dead_letter_exchange,
                "x-dead-letter-routing-key": dead,
                **quorum_arguments(kind, dead_letters=True, delivery_limit=limit),
            },
        ),
        *wiring.tier_queues(first_tier, queue, ladder),
        Queue(dead, arguments=quorum_arguments(kind, dead_letters=False)),
    ]


def _store_bindings(org: str, services: list[str], queue: str, retry: str, dead: str) -> Iterator[Binding]:
    for service in services:
        main_exchange, retry_exchange, dead_letter_exchange = naming.service_exchanges(org, service)
        for pattern in naming.service_patterns(org, service):
            yield Binding(main_exchange, queue, pattern)
        yield Binding(retry_exchange, retry, retry)
        yield Binding(dead_letter_exchange, dead, dead)
