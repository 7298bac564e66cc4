"""asyncio services: `await bus.publish(...)` and `async def` handlers, with the threaded runtime's
retry and dead-letter semantics (the same dispatch and decision code runs underneath)."""

from bus_runtime.aio.bus import AsyncRabbitMqCommandBus, AsyncRabbitMqEventBus
from bus_runtime.aio.consumer import AsyncRabbitMqEventConsumer
from bus_runtime.aio.memory import AsyncInMemoryBroker

__all__ = ["AsyncInMemoryBroker", "AsyncRabbitMqCommandBus", "AsyncRabbitMqEventBus", "AsyncRabbitMqEventConsumer"]
