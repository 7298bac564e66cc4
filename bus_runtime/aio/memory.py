"""The in-memory broker's asyncio face: `await bus.publish(...)`, `await broker.run_until_idle()`.

Deliveries run the same synchronous dispatch as `InMemoryBroker` in a worker thread
(`asyncio.to_thread`), and each `async def` handler runs on the test's own loop while that
thread waits for it: handler code sees the loop it would see in production, and the broker,
its virtual clock and its trace are the ones the synchronous API shows.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from bus_runtime.async_handlers import handler_loop
from bus_runtime.memory import InMemoryBroker
from bus_runtime.memory.broker import DEFAULT_MAX_STEPS
from bus_runtime.message import Message
from topology.spec.model import Spec


class AsyncInMemoryBus:
    """`await publish(message or list, headers=None)`; returns the unroutable messages."""

    def __init__(self, bus: Any) -> None:
        self._bus = bus

    async def publish(
        self, messages: Message | Sequence[Message], headers: Mapping[str, Any] | None = None
    ) -> list[Message]:
        return list(self._bus.publish(messages, headers))

    async def dispatch(self, command: Message | Sequence[Message]) -> list[Message]:
        return await self.publish(command)

    @property
    def published_count(self) -> int:
        return int(self._bus.published_count)

    @property
    def unroutable_count(self) -> int:
        return int(self._bus.unroutable_count)


class AsyncInMemoryBroker:
    """An `InMemoryBroker` for asyncio tests; every synchronous attribute (`messages`, `calls`,
    `trace`, `depths`, `now_ms`, ...) is the wrapped broker's."""

    def __init__(self, broker: InMemoryBroker) -> None:
        self.broker = broker

    @classmethod
    def from_spec(
        cls, spec: str | os.PathLike[str] | Spec, variables: Mapping[str, Any] | None = None
    ) -> AsyncInMemoryBroker:
        return cls(InMemoryBroker.from_spec(spec, variables))

    def event_bus(self, service: str, on_unroutable: Literal["log", "raise"] = "log") -> AsyncInMemoryBus:
        return AsyncInMemoryBus(self.broker.event_bus(service, on_unroutable))

    def command_bus(self, service: str, on_unroutable: Literal["log", "raise"] = "log") -> AsyncInMemoryBus:
        return AsyncInMemoryBus(self.broker.command_bus(service, on_unroutable))

    async def run_until_idle(self, max_steps: int = DEFAULT_MAX_STEPS) -> int:
        """Deliver and let TTLs expire until nothing is left; async handlers run on this loop."""
        return await self._in_thread(functools.partial(self.broker.run_until_idle, max_steps))

    async def advance(self, ms: int, max_steps: int = DEFAULT_MAX_STEPS) -> int:
        """Move the virtual clock by `ms`, doing what falls due on the way."""
        return await self._in_thread(functools.partial(self.broker.advance, ms, max_steps))

    async def _in_thread(self, call: functools.partial[int]) -> int:
        token = handler_loop.set(asyncio.get_running_loop())
        try:
            return await asyncio.to_thread(call)
        finally:
            handler_loop.reset(token)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.broker, name)
