"""petisco 2.2.3's layout, object for object as its `RabbitMqMessageConfigurer` creates it
(tests/fixtures/petisco_layout.json is what it created on RabbitMQ 3.10.8).

What it costs, kept on purpose so petisco services can redeclare these objects on start:
every main queue expires messages after its TTL, 5 s unless the spec's `main_queue_ttl_ms`
says otherwise as petisco's `QueueConfig` can (a consumer outage dead-letters the backlog), and
the store queues are vhost-global (`store`, `retry.store`, `dead_letter.store`), shared by every
organization in the vhost.
"""

from __future__ import annotations

from collections.abc import Iterator

from topology import naming
from topology.compile.objects import Arguments, Binding, Queue
from topology.spec.model import ResolvedStore, ResolvedSubscriber


def subscriber_objects(org: str, sub: ResolvedSubscriber) -> tuple[list[Queue], list[Binding]]:
    main_exchange, retry_exchange, dead_letter_exchange = naming.service_exchanges(org, sub.service)
    queue = sub.queue
    retry = naming.retry_queue(queue)
    dead = naming.dead_letter_queue(queue)
    queues = [
        Queue(queue, arguments=_main_arguments(dead_letter_exchange, dead, sub.main_queue_ttl_ms)),
        Queue(
            retry,
            arguments={
                "x-dead-letter-exchange": main_exchange,
                "x-dead-letter-routing-key": retry,
                "x-message-ttl": sub.retry.delay_ms,
            },
        ),
        Queue(dead),
    ]
    bindings = [
        Binding(main_exchange, queue, sub.routing_key),
        Binding(main_exchange, queue, retry),
        Binding(retry_exchange, retry, retry),
        Binding(dead_letter_exchange, dead, dead),
    ]
    return queues, bindings


def store_objects(org: str, services: list[str], store: ResolvedStore) -> tuple[list[Queue], list[Binding]]:
    """The store dead-letters through `<org>.store` exchanges and is bound to every service."""
    queue, retry, dead = naming.store_queues(store.queue)
    store_retry, store_dead_letter = naming.petisco_store_exchanges(org)
    queues = [
        Queue(queue, arguments=_main_arguments(store_dead_letter, dead, store.main_queue_ttl_ms)),
        Queue(
            retry,
            arguments={
                "x-dead-letter-exchange": store_retry,
                "x-dead-letter-routing-key": queue,
                "x-message-ttl": store.retry.delay_ms,
            },
        ),
        Queue(dead),
    ]
    bindings = [
        *(Binding(store_retry, queue, pattern) for pattern in naming.petisco_store_patterns()),
        Binding(store_retry, queue, queue),
        Binding(store_retry, retry, retry),
        Binding(store_dead_letter, dead, dead),
        *_service_bindings(org, services, queue, retry, dead),
    ]
    return queues, bindings


def _main_arguments(dead_letter_exchange: str, dead_letter_queue: str, ttl_ms: int | None) -> Arguments:
    """petisco's declarer leaves `x-message-ttl` out when its main_ttl is None (or 0)."""
    arguments: dict[str, int | str] = {
        "x-dead-letter-exchange": dead_letter_exchange,
        "x-dead-letter-routing-key": dead_letter_queue,
    }
    if ttl_ms is not None:
        arguments["x-message-ttl"] = ttl_ms
    return arguments


def _service_bindings(org: str, services: list[str], queue: str, retry: str, dead: str) -> Iterator[Binding]:
    for service in services:
        main_exchange, _, dead_letter_exchange = naming.service_exchanges(org, service)
        for pattern in naming.petisco_store_patterns():
            yield Binding(main_exchange, queue, pattern)
            yield Binding(dead_letter_exchange, dead, naming.dead_letter_queue(pattern))
        yield Binding(main_exchange, queue, retry)
        yield Binding(main_exchange, queue, queue)
        yield Binding(dead_letter_exchange, dead, dead)
