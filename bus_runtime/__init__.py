"""bus_runtime: publish and consume events on the topology that `rabbitform apply` created."""

from bus_runtime.message import Command, Event, InfoId, Message
from bus_runtime.subscriber import CommandSubscriber, EventSubscriber

__all__ = ["Command", "CommandSubscriber", "Event", "EventSubscriber", "InfoId", "Message"]
