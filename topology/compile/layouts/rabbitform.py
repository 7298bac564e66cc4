"""The rabbitform layout: no TTL on subscriber queues, one store per spec, store retries by the
default exchange. docs/naming.md documents every object."""

from __future__ import annotations

from collections.abc import Iterator

from topology import naming
from topology.compile.objects import Binding, Queue
from topology.compile.quorum import quorum_arguments
from topology.spec.model import ResolvedStore, ResolvedSubscriber

DEFAULT_EXCHANGE = ""


def subscriber_objects(org: str, sub: ResolvedSubscriber) -> tuple[list[Queue], list[Binding]]:
    main_exchange, retry_exchange, dead_letter_exchange = naming.service_exchanges(org, sub.service)
    queue = sub.queue
    retry = naming.retry_queue(queue)
    dead = naming.dead_letter_queue(queue)
    kind, limit = sub.queue_type, sub.retry.delivery_limit
    queues = [
        # No TTL on the main queue: a consumer outage must never dead-letter real work.
        Queue(
            queue,
            arguments={
                "x-dead-letter-exchange": dead_letter_exchange,
                "x-dead-letter-routing-key": dead,
                **quorum_arguments(kind, dead_letters=True, delivery_limit=limit),
            },
        ),
        Queue(
            retry,
            arguments={
                "x-message-ttl": sub.retry.delay_ms,
                "x-dead-letter-exchange": main_exchange,
                "x-dead-letter-routing-key": retry,
                **quorum_arguments(kind, dead_letters=True),
            },
        ),
        Queue(dead, arguments=quorum_arguments(kind, dead_letters=False)),
    ]
    bindings = [
        Binding(main_exchange, queue, sub.routing_key),
        Binding(main_exchange, queue, retry),
        Binding(retry_exchange, retry, retry),
        Binding(dead_letter_exchange, dead, dead),
    ]
    return queues, bindings


def store_objects(org: str, services: list[str], store: ResolvedStore) -> tuple[list[Queue], list[Binding]]:
    """The store hears every service; its retries and dead letters travel by the default exchange.

    The default exchange routes by queue name, so `retry.store` returns a message to the store
    alone without depending on any one service's exchange.
    """
    queue, retry, dead = naming.store_queues(store.queue)
    kind, limit = store.queue_type, store.retry.delivery_limit
    queues = [
        Queue(
            queue,
            arguments={
                "x-dead-letter-exchange": DEFAULT_EXCHANGE,
                "x-dead-letter-routing-key": dead,
                **quorum_arguments(kind, dead_letters=True, delivery_limit=limit),
            },
        ),
        Queue(
            retry,
            arguments={
                "x-message-ttl": store.retry.delay_ms,
                "x-dead-letter-exchange": DEFAULT_EXCHANGE,
                "x-dead-letter-routing-key": queue,
                **quorum_arguments(kind, dead_letters=True),
            },
        ),
        Queue(dead, arguments=quorum_arguments(kind, dead_letters=False)),
    ]
    return queues, list(_store_bindings(org, services, queue, retry, dead))


def _store_bindings(org: str, services: list[str], queue: str, retry: str, dead: str) -> Iterator[Binding]:
    for service in services:
        main_exchange, retry_exchange, dead_letter_exchange = naming.service_exchanges(org, service)
        for pattern in naming.service_patterns(org, service):
            yield Binding(main_exchange, queue, pattern)
        yield Binding(retry_exchange, retry, retry)
        yield Binding(dead_letter_exchange, dead, dead)
