"""`AsyncRabbitMqEventBus` / `AsyncRabbitMqCommandBus`: `await bus.publish(event or list)`, confirmed.

The confirmed publisher already runs its own pika I/O thread with a window of messages in
flight; an async publish hands the batch to it from a small thread pool and awaits the
confirms there, so the event loop never blocks and several publishes may be awaited at once
(measured against pika's asyncio adapter: see `python -m benchmarks aio`).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from bus_runtime.bus import RabbitMqCommandBus, RabbitMqEventBus, _MessageBus
from bus_runtime.connector import RabbitMqConnector
from bus_runtime.limits import DEFAULT_MAX_MESSAGE_SIZE
from bus_runtime.message import Command, Event, Message
from bus_runtime.publisher import OnUnroutable
from topology.naming import DEFAULT_LAYOUT, Layout

PUBLISH_THREADS = 4  # concurrent publish calls waiting for confirms; each batch is already pipelined


class _AsyncMessageBus:
    sync_bus: ClassVar[type[_MessageBus]]

    def __init__(
        self,
        connector: RabbitMqConnector | None,
        organization: str,
        service: str,
        *,
        on_unroutable: OnUnroutable = "log",
        timeout: float = 30.0,
        window: int = 20_000,
        layout: Layout = DEFAULT_LAYOUT,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        self._bus = self.sync_bus(
            connector,
            organization,
            service,
            on_unroutable=on_unroutable,
            timeout=timeout,
            window=window,
            layout=layout,
            max_message_size=max_message_size,
        )
        self._closed = False
        self._pool = ThreadPoolExecutor(PUBLISH_THREADS, thread_name_prefix=f"rabbitform-aio-publish-{service}")
        self.organization = organization
        self.service = service

    @property
    def unroutable_count(self) -> int:
        return self._bus.unroutable_count

    @property
    def connection_count(self) -> int:
        return self._bus.connection_count

    async def publish(
        self,
        messages: Message | Sequence[Message],
        headers: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> list[Message]:
        """Publish one message or a batch; returns once the broker confirmed them all, with the
        ones returned as unroutable. Raises `PublishError` naming the unconfirmed messages (all
        of them, at once, once the bus is closed)."""
        if self._closed:  # the pool is shut down: the threaded bus says "closed" without waiting
            return self._bus.publish(messages, headers, timeout)
        call = functools.partial(self._bus.publish, messages, headers, timeout)
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    async def close(self) -> None:
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(None, self._bus.close)
        self._pool.shutdown(wait=False)

    async def __aenter__(self) -> _AsyncMessageBus:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()


class AsyncRabbitMqEventBus(_AsyncMessageBus):
    """Publishes domain events to `<organization>.<service>`, awaiting the broker's confirms."""

    sync_bus = RabbitMqEventBus
    kind = Event


class AsyncRabbitMqCommandBus(_AsyncMessageBus):
    """Publishes commands, awaiting the broker's confirms."""

    sync_bus = RabbitMqCommandBus
    kind = Command

    async def dispatch(self, command: Command | Sequence[Command]) -> list[Message]:
        """petisco's name for publishing a command."""
        return await self.publish(command)
