"""An in-memory broker that behaves like the applied topology, for tests and the demo.

```python
broker = InMemoryBroker.from_spec("specs/alice.yaml")
broker.consumer_from_spec()
broker.event_bus("petisco").publish(UserCreated(user_id="42"))
broker.run_until_idle()
assert broker.calls("send_mail_handler") == 1
```
"""

from bus_runtime.memory.broker import BrokerError, InMemoryBroker, NotIdleError
from bus_runtime.memory.clients import (
    InMemoryCommandBus,
    InMemoryConsumer,
    InMemoryEventBus,
)
from bus_runtime.memory.clock import VirtualClock
from bus_runtime.memory.messages import Properties, QueuedMessage
from bus_runtime.memory.routing import topic_matches
from bus_runtime.memory.trace import (
    BreakerChanged,
    DeadLettered,
    Delivered,
    Expired,
    Handled,
    Published,
    Rejected,
    Retried,
    Routed,
    TraceEntry,
    Unroutable,
    format_trace,
)

__all__ = [
    "BreakerChanged",
    "BrokerError",
    "DeadLettered",
    "Delivered",
    "Expired",
    "Handled",
    "InMemoryBroker",
    "InMemoryCommandBus",
    "InMemoryConsumer",
    "InMemoryEventBus",
    "NotIdleError",
    "Properties",
    "Published",
    "QueuedMessage",
    "Rejected",
    "Retried",
    "Routed",
    "TraceEntry",
    "Unroutable",
    "VirtualClock",
    "format_trace",
    "topic_matches",
]
