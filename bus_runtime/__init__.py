"""bus_runtime: publish and consume events on the topology that `rabbitform apply` created.

A plain `import bus_runtime` loads the runtime only: `RabbitMqEventConfigurer` (which plans and
applies through the management API, with requests) is imported on first use of the name.
"""

from typing import TYPE_CHECKING, Any

from bus_runtime.breaker import BreakerSettings
from bus_runtime.bus import RabbitMqCommandBus, RabbitMqEventBus
from bus_runtime.connector import RabbitMqConnector
from bus_runtime.consumer import RabbitMqEventConsumer
from bus_runtime.errors import BrokerUnavailable, BusError, PublishError, TopologyMissing, UnroutableError
from bus_runtime.message import Command, Event, InfoId, Message
from bus_runtime.subscriber import CommandSubscriber, EventSubscriber, Retries

if TYPE_CHECKING:
    from bus_runtime.configurer import RabbitMqEventConfigurer


def __getattr__(name: str) -> Any:
    if name == "RabbitMqEventConfigurer":
        from bus_runtime.configurer import RabbitMqEventConfigurer

        return RabbitMqEventConfigurer
    raise AttributeError(f"module 'bus_runtime' has no attribute {name!r}")


__all__ = [
    "BreakerSettings",
    "BrokerUnavailable",
    "BusError",
    "Command",
    "CommandSubscriber",
    "Event",
    "EventSubscriber",
    "InfoId",
    "Message",
    "PublishError",
    "RabbitMqCommandBus",
    "RabbitMqConnector",
    "RabbitMqEventBus",
    "RabbitMqEventConfigurer",
    "RabbitMqEventConsumer",
    "Retries",
    "TopologyMissing",
    "UnroutableError",
]
