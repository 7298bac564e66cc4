"""Is a queue empty now? Read over AMQP, not from the management API's statistics.

The plan counts messages through the management API, whose counts lag by the statistics
interval (5 s by default): a queue counted empty may hold messages by the time apply deletes
it. So apply reads the queues it will delete again, with a passive `queue.declare` (the
broker's own count at that moment), before its first change: a destroy or replace either
starts and finishes, or does not start. Quorum queues on RabbitMQ 3.x refuse `queue.delete`
with `if-empty`, so each is read again just before its unconditional delete (the window
between the two calls is one round trip; its bindings are gone by then, so only a publish to
the queue's name through the default exchange can land in it).

`busy` is pure; `QueueDepths` is the shell: one connection, shared by the delete phase's threads.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from topology.errors import RabbitformError


def busy(depths: Mapping[str, int | None]) -> list[tuple[str, int]]:
    """The queues that hold messages (a missing queue, None, is empty), in name order."""
    return sorted((name, count) for name, count in depths.items() if count)


def not_empty_error(vhost: str, found: list[tuple[str, int]], started: bool) -> RabbitformError:
    listed = ", ".join(f"{name} ({count} message{'s' if count != 1 else ''})" for name, count in found)
    state = "the apply stopped before deleting it" if started else "nothing was changed"
    return RabbitformError(
        f"queue {listed} on vhost {vhost!r} now holds messages (the plan counted none: the management API's "
        f"statistics lag): {state}; plan again, then drain it, move its messages (--move-messages) or accept "
        "losing them (--allow-data-loss)"
    )


class QueueDepths:
    """Ready-message counts by passive declare, on one AMQP connection opened on first use."""

    def __init__(self, params: Any) -> None:
        self.params = params
        self._lock = threading.Lock()
        self._connection: Any = None
        self._channel: Any = None

    def read(self, queues: Iterable[str]) -> dict[str, int | None]:
        import pika

        from topology.amqp import queue_depth  # pika: loaded only by an apply that deletes queues

        counts: dict[str, int | None] = {}
        with self._lock:
            for name in queues:
                if self._connection is None or not self._connection.is_open:
                    self._connection = pika.BlockingConnection(self.params)
                    self._channel = None
                if self._channel is None or not self._channel.is_open:
                    self._channel = self._connection.channel()
                counts[name] = queue_depth(self._channel, name)  # None: gone already, nothing to lose
        return counts

    def close(self) -> None:
        with self._lock:
            if self._connection is not None and self._connection.is_open:
                self._connection.close()
            self._connection = None
