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
from topology.compile.layouts import wiring
from topology.compile.objects import Binding, Queue
from topology.spec.model import ResolvedStore, ResolvedSubscriber


def subscriber_objects(org: str, sub: ResolvedSubscriber) -> tuple[list[Queue], list[Binding]]:
    return wiring.subscriber_objects(org, sub, _queues)


def store_objects(org: str, services: list[str], store: ResolvedStore) -> tuple[list[Queue], list[Binding]]:
    """The store dead-letters through `<org>.store` exchanges and is bound to every service."""
    queue, retry, dead = naming.store_queues(store.queue)
    store_retry, store_dead_letter = naming.petisco_store_exchanges(org)
    queues = _queues(store, (queue, retry, dead), store_dead_letter, back=(store_retry, queue))
    bindings = [
        *(Binding(store_retry, queue, pattern) for pattern in naming.petisco_store_patterns()),
        Binding(store_retry, queue, queue),
        Binding(store_retry, retry, retry),
        Binding(store_dead_letter, dead, dead),
        *_service_bindings(org, services, queue, retry, dead),
    ]
    return queues, bindings


def _queues(
    of: ResolvedSubscriber | ResolvedStore,
    names: tuple[str, str, str],
    dead_letter_exchange: str,
    back: tuple[str, str],
) -> list[Queue]:
    """A subscriber's or the store's three queues: the main queue (with its TTL) dead-letters
    through `dead_letter_exchange` to the dead-letter queue; the retry queue holds a message for
    the retry delay, then dead-letters it `back` (exchange, routing key) to the main queue."""
    queue, retry, dead = names
    back_exchange, back_key = back
    main: dict[str, int | str] = {"x-dead-letter-exchange": dead_letter_exchange, "x-dead-letter-routing-key": dead}
    if of.main_queue_ttl_ms is not None:  # petisco's declarer leaves it out when its main_ttl is None (or 0)
        main["x-message-ttl"] = of.main_queue_ttl_ms
    return [
        Queue(queue, arguments=main),
        Queue(
            retry,
            arguments={
                "x-dead-letter-exchange": back_exchange,
                "x-dead-letter-routing-key": back_key,
                "x-message-ttl": of.retry.delay_ms,
            },
        ),
        Queue(dead),
    ]


def _service_bindings(org: str, services: list[str], queue: str, retry: str, dead: str) -> Iterator[Binding]:
    for service in services:
        main_exchange, _, dead_letter_exchange = naming.service_exchanges(org, service)
        for pattern in naming.petisco_store_patterns():
            yield Binding(main_exchange, queue, pattern)
            yield Binding(dead_letter_exchange, dead, naming.dead_letter_queue(pattern))
        yield Binding(main_exchange, queue, retry)
        yield Binding(main_exchange, queue, queue)
        yield Binding(dead_letter_exchange, dead, dead)
