"""Is a queue empty now? Read from the broker, not from the management API's statistics.

The plan counts messages through the management API, whose counts lag by the statistics
interval (5 s by default): a queue counted empty may hold messages by the time apply deletes
it. So apply reads the queues it will delete again before its first change: ready messages
with a passive `queue.declare` (the broker's own count at that moment), and messages that
consumers hold unacknowledged from the management API (AMQP has no count of those: a queue whose
consumer holds every message looks empty to a passive declare, and to `if-empty`). A queue that
holds either stops the apply before it starts: a destroy or replace either starts and finishes,
or does not start. The unacknowledged count still lags: a message delivered within the last
statistics interval before the check may be held without either count showing it
(docs/lifecycle.md). Quorum queues on RabbitMQ 3.x refuse `queue.delete` with `if-empty`, so each
is read again just before its unconditional delete (the window between the two calls is one
round trip; its bindings are gone by then, so only a publish to the queue's name through the
default exchange can land in it).

`busy` is pure; `QueueDepths` is the shell: one connection, shared by the delete phase's threads.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from topology.broker.concurrency import run_bounded
from topology.broker.management import ManagementClient
from topology.errors import RabbitformError


def busy(
    depths: Mapping[str, int | None], unacknowledged: Mapping[str, int] | None = None
) -> list[tuple[str, int, int]]:
    """The queues that hold messages, ready or unacknowledged, as (name, ready, unacknowledged)
    in name order (a missing queue, None, is empty)."""
    held = unacknowledged or {}
    found = ((name, count or 0, held.get(name, 0)) for name, count in depths.items() if count is not None)
    return sorted(item for item in found if item[1] or item[2])


def _held(ready: int, unacked: int) -> str:
    parts = [f"{ready} message{'s' if ready != 1 else ''}"] if ready else []
    if unacked:
        parts.append(f"{unacked} unacknowledged by a consumer")
    return ", ".join(parts)


def not_empty_error(vhost: str, found: list[tuple[str, int, int]], started: bool) -> RabbitformError:
    listed = ", ".join(f"{name} ({_held(ready, unacked)})" for name, ready, unacked in found)
    state = "the apply stopped before deleting it" if started else "nothing was changed"
    return RabbitformError(
        f"queue {listed} on vhost {vhost!r} now holds messages (the plan counted none: the management API's "
        f"statistics lag): {state}; plan again, then drain it, move its messages (--move-messages) or accept "
        "losing them (--allow-data-loss)"
    )


def read_unacknowledged(client: ManagementClient, vhost: str, queues: Iterable[str]) -> dict[str, int]:
    """Messages delivered to consumers and not yet acknowledged, per queue, from the management
    API (AMQP cannot tell: a passive declare counts ready messages only). These counters lag by
    the statistics interval; a queue without counters yet counts 0."""
    names = sorted(set(queues))
    columns = {"columns": "name,messages_unacknowledged"}
    answers = run_bounded(names, lambda name: client.get("queues", vhost, name, params=columns, missing_ok=True))
    return {
        str(row["name"]): int(row.get("messages_unacknowledged") or 0)
        for row in answers
        if isinstance(row, dict) and row.get("name") in names
    }


def still_held(
    client: ManagementClient, vhost: str, depths: QueueDepths, queues: Iterable[str]
) -> list[tuple[str, int, int]]:
    """The queues that hold messages now: ready ones counted by the broker over AMQP, those a
    consumer holds unacknowledged by the management API (read for the queues that exist)."""
    ready = depths.read(queues)
    return busy(ready, read_unacknowledged(client, vhost, [name for name, count in ready.items() if count is not None]))


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
