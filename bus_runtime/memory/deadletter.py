"""The `x-death` bookkeeping RabbitMQ 3.x does when it dead-letters a message, as a pure function.

Verified against RabbitMQ 3.10: the first death also sets `x-first-death-{reason,queue,exchange}`;
a later death in the same queue for the same reason increments that entry's `count` and moves
it to the front; `time` is a whole-second UTC timestamp (pika reads it as a naive datetime).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

X_DEATH = "x-death"


def death_time(now: datetime) -> datetime:
    """How a client sees the broker's `x-death` time: whole seconds, naive UTC."""
    return now.astimezone(timezone.utc).replace(tzinfo=None, microsecond=0)


def with_death(
    headers: Mapping[str, Any],
    *,
    queue: str,
    reason: str,
    exchange: str,
    routing_keys: Iterable[str],
    time: datetime,
) -> dict[str, Any]:
    """The headers of a message after the broker dead-lettered it out of `queue`."""
    result = copy.deepcopy(dict(headers))
    info: dict[str, Any] = {
        "reason": reason,
        "queue": queue,
        "time": time,
        "exchange": exchange,
        "routing-keys": list(routing_keys),
    }
    deaths = result.get(X_DEATH)
    if X_DEATH not in result:
        result["x-first-death-reason"] = reason
        result["x-first-death-queue"] = queue
        result["x-first-death-exchange"] = exchange
        result[X_DEATH] = [{"count": 1, **info}]
    elif isinstance(deaths, list):
        grouped = _group_by_queue_and_reason(deaths)
        matches = [d for d in grouped if d.get("queue") == queue and d.get("reason") == reason]
        others = [d for d in grouped if not (d.get("queue") == queue and d.get("reason") == reason)]
        if matches:
            first = dict(matches[0])
            first["count"] = _count(first) + 1 if "count" in first else 1
            entry = dict(sorted(first.items()))
        else:
            entry = {"count": 1, **info}
        result[X_DEATH] = [entry, *others]
    else:  # not an array: RabbitMQ logs a warning and starts a fresh history
        result[X_DEATH] = [{"count": 1, **info}]
    return result


def _count(entry: Mapping[str, Any]) -> int:
    try:
        return int(entry.get("count", 0))
    except (TypeError, ValueError):
        return 0


def _group_by_queue_and_reason(deaths: list[Any]) -> list[dict[str, Any]]:
    """Merge entries for one (queue, reason), summing counts, in first-seen order."""
    grouped: dict[tuple[Any, Any], dict[str, Any]] = {}
    for death in deaths:
        if not isinstance(death, Mapping):
            continue
        key = (death.get("queue"), death.get("reason"))
        if key in grouped:
            grouped[key]["count"] = _count(grouped[key]) + _count(death)
        else:
            grouped[key] = dict(death)
    return list(grouped.values())
