"""Compare the desired topology with the broker's and produce a plan.

Pure functions over plain data: the live shell reads the broker, this decides.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from topology.compile.definitions import object_definition, to_definitions
from topology.compile.objects import Binding, Exchange, Queue, QueueStats, Topology
from topology.plan.model import Change, Plan, change_sort_key, fingerprint
from topology.plan.safety import check_safety, foreign_bindings_lost
from topology.plan.scope import Scope


def compute_plan(
    desired: Topology,
    actual: Topology | None,
    scope: Scope,
    stats: Mapping[str, QueueStats] | None = None,
    allow_data_loss: bool = False,
) -> Plan:
    """The plan that converges `actual` (the in-scope part of a vhost, or None when the vhost
    does not exist) to `desired`, with the safety rules applied."""
    stats = stats or {}
    owned = scope.filter(actual) if actual is not None else Topology(vhost=desired.vhost)
    changes, unchanged = diff(desired, owned, stats)
    if actual is None:
        changes.insert(0, Change("create", "vhost", desired.vhost, after={"name": desired.vhost}))
    warnings, errors = check_safety(changes, allow_data_loss)
    warnings += foreign_bindings_lost(actual, scope, changes)
    return Plan(
        vhost=desired.vhost,
        changes=tuple(changes),
        scope=scope,
        unchanged=unchanged,
        warnings=tuple(warnings),
        errors=tuple(errors),
        fingerprint=state_fingerprint(actual, scope, stats, at_risk_queues(changes)),
        allow_data_loss=allow_data_loss,
    )


def diff(
    desired: Topology, actual: Topology, stats: Mapping[str, QueueStats] | None = None
) -> tuple[list[Change], int]:
    """Changes from `actual` to `desired` (both already in scope) and the count of no-ops."""
    stats = stats or {}
    changes: list[Change] = []
    unchanged = 0

    exchanges_now = {e.name: e for e in actual.exchanges}
    replaced_exchanges: set[str] = set()
    for exchange in desired.exchanges:
        current = exchanges_now.get(exchange.name)
        if current is None:
            changes.append(_create("exchange", exchange.name, exchange))
        elif (reason := _exchange_difference(current, exchange)) is not None:
            replaced_exchanges.add(exchange.name)
            changes.append(_replace("exchange", exchange.name, current, exchange, reason))
        else:
            unchanged += 1
    wanted_exchanges = {e.name for e in desired.exchanges}
    changes.extend(_delete("exchange", e.name, e) for e in actual.exchanges if e.name not in wanted_exchanges)

    queues_now = {q.name: q for q in actual.queues}
    replaced_queues: set[str] = set()
    for queue in desired.queues:
        current_queue = queues_now.get(queue.name)
        if current_queue is None:
            changes.append(_create("queue", queue.name, queue))
        elif (reason := _queue_difference(current_queue, queue)) is not None:
            replaced_queues.add(queue.name)
            changes.append(_replace("queue", queue.name, current_queue, queue, reason, stats.get(queue.name)))
        else:
            unchanged += 1
    wanted_queues = {q.name for q in desired.queues}
    changes.extend(_delete("queue", q.name, q, stats.get(q.name)) for q in actual.queues if q.name not in wanted_queues)

    bindings_now = {b.key for b in actual.bindings}
    for binding in desired.bindings:
        if binding.key not in bindings_now:
            changes.append(_create("binding", binding.label, binding))
        elif (reason := _replaced_end(binding, replaced_exchanges, replaced_queues)) is not None:
            changes.append(_replace("binding", binding.label, binding, binding, reason))
        else:
            unchanged += 1
    wanted_bindings = {b.key for b in desired.bindings}
    changes.extend(_delete("binding", b.label, b) for b in actual.bindings if b.key not in wanted_bindings)

    changes.sort(key=change_sort_key)
    return changes, unchanged


def at_risk_queues(changes: list[Change]) -> list[str]:
    """Queues whose messages a plan could lose: the ones it deletes or replaces."""
    return sorted(c.name for c in changes if c.kind == "queue" and c.action in ("delete", "replace"))


def state_fingerprint(
    actual: Topology | None, scope: Scope, stats: Mapping[str, QueueStats], at_risk: list[str]
) -> str:
    """What a saved plan depends on: the in-scope objects, and whether the queues it would
    delete or replace are empty. Traffic through other queues does not make a plan stale."""
    if actual is None:
        return fingerprint({"vhost_exists": False})
    owned = scope.filter(actual)
    return fingerprint(
        {
            "vhost_exists": True,
            "objects": to_definitions(owned, include_vhost=False),
            "non_empty": [name for name in at_risk if stats.get(name, QueueStats()).messages > 0],
        }
    )


def _create(kind: Any, name: str, obj: Exchange | Queue | Binding) -> Change:
    return Change("create", kind, name, after=object_definition(obj))


def _delete(kind: Any, name: str, obj: Exchange | Queue | Binding, stats: QueueStats | None = None) -> Change:
    return Change(
        "delete",
        kind,
        name,
        before=object_definition(obj),
        messages=stats.messages if stats else None,
        consumers=stats.consumers if stats else None,
    )


def _replace(
    kind: Any,
    name: str,
    before: Exchange | Queue | Binding,
    after: Exchange | Queue | Binding,
    reason: str,
    stats: QueueStats | None = None,
) -> Change:
    return Change(
        "replace",
        kind,
        name,
        before=object_definition(before),
        after=object_definition(after),
        reason=reason,
        messages=stats.messages if stats else None,
        consumers=stats.consumers if stats else None,
    )


def _show(value: Any) -> str:
    """Values as JSON, so that the string "5000" and the number 5000 read differently."""
    return "(absent)" if value is _ABSENT else json.dumps(value)


_ABSENT = object()


def _property_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    reasons = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key, _ABSENT), after.get(key, _ABSENT)
        if old is _ABSENT or new is _ABSENT or type(old) is not type(new) or old != new:
            reasons.append(f"{key}: {_show(old)} -> {_show(new)}")
    return reasons


def _exchange_difference(current: Exchange, wanted: Exchange) -> str | None:
    reasons = _property_changes(
        {
            "type": current.type,
            "durable": current.durable,
            "auto_delete": current.auto_delete,
            "internal": current.internal,
        },
        {
            "type": wanted.type,
            "durable": wanted.durable,
            "auto_delete": wanted.auto_delete,
            "internal": wanted.internal,
        },
    )
    reasons += [f"arguments.{r}" for r in _property_changes(current.arguments, wanted.arguments)]
    return "; ".join(reasons) or None


def _queue_difference(current: Queue, wanted: Queue) -> str | None:
    reasons = _property_changes(
        {"durable": current.durable, "auto_delete": current.auto_delete},
        {"durable": wanted.durable, "auto_delete": wanted.auto_delete},
    )
    reasons += [f"arguments.{r}" for r in _property_changes(current.arguments, wanted.arguments)]
    return "; ".join(reasons) or None


def _replaced_end(binding: Binding, exchanges: set[str], queues: set[str]) -> str | None:
    """A binding disappears with either end: recreate it when an end is replaced."""
    if binding.source in exchanges:
        return f"recreated with replaced exchange {binding.source}"
    if binding.destination_type == "queue" and binding.destination in queues:
        return f"recreated with replaced queue {binding.destination}"
    if binding.destination_type == "exchange" and binding.destination in exchanges:
        return f"recreated with replaced exchange {binding.destination}"
    return None
