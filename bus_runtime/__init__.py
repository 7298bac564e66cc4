"""bus_runtime: publish and consume events on the topology that `rabbitform apply` created."""

from bus_runtime.bus import RabbitMqCommandBus, RabbitMqEventBus
from bus_runtime.configurer import RabbitMqEventConfigurer
from bus_runtime.connector import RabbitMqConnector
from bus_runtime.consumer import RabbitMqEventConsumer
from bus_runtime.errors import BrokerUnavailable, BusError, PublishError, TopologyMissing, UnroutableError
from bus_runtime.message import Command, Event, InfoId, Message
from bus_runtime.subscriber import CommandSubscriber, EventSubscriber

__all__ = [
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
    "TopologyMissing",
    "UnroutableError",
]
