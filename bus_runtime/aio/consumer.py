"""`AsyncRabbitMqEventConsumer`: `async def` handlers (sync ones too) on the threaded consumer.

The threaded consumer keeps doing what it does well and is tested for (pika's I/O thread,
prefetch, settlement, confirmed retry and dead-letter copies, reconnects); each delivery for an
async handler goes from its I/O thread straight to the loop that called `await start()`
(`dispatch.handle_delivery_async`), and its decision straight back: no worker thread waits. Retries, dead letters and headers are therefore exactly the threaded consumer's:
the same `dispatch` and `retry.decide` run underneath.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bus_runtime.connector import RabbitMqConnector
from bus_runtime.consumer import DEFAULT_PREFETCH, RabbitMqEventConsumer
from bus_runtime.consumer_connection import State
from bus_runtime.subscriber import EventSubscriber, Handler, Subscription, SubscriptionGuard
from topology import naming
from topology.naming import DEFAULT_LAYOUT, Layout

DEFAULT_ASYNC_WORKERS = 8  # for plain handlers mixed in; async ones run on the loop, not on workers


class AsyncRabbitMqEventConsumer:
    """Consume with `async def` (or plain) handlers: `consume(subscribers)`, `await start()`, `await stop()`."""

    def __init__(
        self,
        connector: RabbitMqConnector | None,
        organization: str,
        service: str,
        *,
        max_retries: int = 5,
        prefetch: int = DEFAULT_PREFETCH,
        workers: int = DEFAULT_ASYNC_WORKERS,
        start_timeout: float = 30.0,
        layout: Layout = DEFAULT_LAYOUT,
        inbox: SubscriptionGuard | None = None,
        threaded: RabbitMqEventConsumer | None = None,
    ) -> None:
        """`threaded` wraps an already configured (not yet started) threaded consumer instead
        of building one from the other arguments (see `wrapping`)."""
        self._consumer = threaded or RabbitMqEventConsumer(
            connector,
            organization,
            service,
            max_retries=max_retries,
            prefetch=prefetch,
            workers=workers,
            start_timeout=start_timeout,
            layout=layout,
            inbox=inbox,
        )

    @classmethod
    def wrapping(cls, consumer: RabbitMqEventConsumer) -> AsyncRabbitMqEventConsumer:
        """The asyncio face of a configured (not yet started) threaded consumer."""
        return cls(consumer.connector, consumer.organization, consumer.service, threaded=consumer)

    @classmethod
    def from_spec(
        cls,
        path: str | Path,
        service: str | None = None,
        subscribers: Iterable[str] | None = None,
        connector: RabbitMqConnector | None = None,
        **options: Any,
    ) -> AsyncRabbitMqEventConsumer:
        """The handlers a spec names by import path (async or not), each with its retry policy."""
        options.setdefault("workers", DEFAULT_ASYNC_WORKERS)
        return cls.wrapping(RabbitMqEventConsumer.from_spec(path, service, subscribers, connector, **options))

    def consume(self, subscribers: Iterable[EventSubscriber]) -> None:
        """Add subscribers: each handler (async or not) consumes its own queue."""
        self._consumer.consume(subscribers)

    def consume_store(
        self, handler: Handler, queue: str = naming.DEFAULT_STORE_QUEUE, max_retries: int | None = None
    ) -> None:
        """Run `handler` (async or not) on the store queue, which hears every event and command."""
        self._consumer.consume_store(handler, queue, max_retries)

    def add_subscriptions(self, subs: Iterable[Subscription]) -> None:
        self._consumer.add_subscriptions(subs)

    @property
    def organization(self) -> str:
        return self._consumer.organization

    @property
    def service(self) -> str:
        return self._consumer.service

    @property
    def subscriptions(self) -> list[Subscription]:
        return list(self._consumer.subscriptions)

    @property
    def handled_count(self) -> int:
        return self._consumer.handled_count

    @property
    def retried_count(self) -> int:
        return self._consumer.retried_count

    @property
    def dead_lettered_count(self) -> int:
        return self._consumer.dead_lettered_count

    @property
    def is_running(self) -> bool:
        return self._consumer.is_running

    @property
    def state(self) -> State:
        """The threaded consumer's connection state: the asyncio face has no lifecycle of its own."""
        return self._consumer.state

    @property
    def transitions(self) -> list[tuple[State, State, str]]:
        return self._consumer.transitions

    @property
    def illegal_transitions(self) -> list[tuple[State, State, str]]:
        return self._consumer.illegal_transitions

    async def start(self) -> None:
        """Connect, check every queue, start consuming; async handlers run on the calling loop.

        Raises `TopologyMissing` (run `rabbitform apply`) or `BrokerUnavailable`.
        """
        loop = asyncio.get_running_loop()
        self._consumer.handler_loop = loop  # async handlers run here, straight from the I/O thread
        await loop.run_in_executor(None, self._consumer.start)

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop taking messages, let the ones in hand finish (on this loop), ack them, close."""
        await asyncio.get_running_loop().run_in_executor(None, functools.partial(self._consumer.stop, timeout))

    async def __aenter__(self) -> AsyncRabbitMqEventConsumer:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()
