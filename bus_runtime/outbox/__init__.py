"""Transactional outbox, its relay, and an idempotent inbox (`pip install 'rabbitform[outbox]'`).

```python
outbox = Outbox("postgresql://app:secret@127.0.0.1/app")
with Session(outbox.engine) as session, session.begin():
    session.add(order)
    outbox.add(session, [OrderPlaced(order_id=order.id)], organization="acme", service="orders")
```
`rabbitform relay --database-url URL` publishes what was committed; `Inbox(url)` given to a
consumer runs each handler at most once in effect per message. Not imported by `import
bus_runtime`: SQLAlchemy loads only here, and only when a name below is first used (the CLI
registers its commands without it).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bus_runtime.outbox.inbox import Inbox
    from bus_runtime.outbox.outbox import Outbox
    from bus_runtime.outbox.relay import OutboxRelay
    from bus_runtime.outbox.sinks import AmqpSink, MemorySink

_WHERE = {
    "Outbox": "bus_runtime.outbox.outbox",
    "Inbox": "bus_runtime.outbox.inbox",
    "OutboxRelay": "bus_runtime.outbox.relay",
    "AmqpSink": "bus_runtime.outbox.sinks",
    "MemorySink": "bus_runtime.outbox.sinks",
}

__all__ = ["AmqpSink", "Inbox", "MemorySink", "Outbox", "OutboxRelay"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'bus_runtime.outbox' has no attribute {name!r}")
