"""Compare the desired topology with the broker's and produce a plan.

Pure functions over plain data: the live shell reads the broker, this decides.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from topology.compile.definitions import (
    AnyObject,
    access_definitions,
    object_definition,
    to_definitions,
    user_definition,
)
from topology.compile.objects import (
    Binding,
    Exchange,
    Permission,
    Policy,
    Queue,
    QueueStats,
    TopicPermissions,
    Topology,
    User,
)
from topology.compile.passwords import password_matches
from topology.compile.policies import foreign_policy_conflicts
from topology.plan.model import PASSWORD_CHANGED, Change, Plan, change_sort_key, fingerprint
from topology.plan.moves import holding_queues, with_moves
from topology.plan.safety import check_safety, foreign_bindings_lost
from topology.plan.scope import Scope


def compute_plan(
    desired: Topology,
    actual: Topology | None,
    scope: Scope,
    stats: Mapping[str, QueueStats] | None = None,
    allow_data_loss: bool = False,
    move_messages: bool = False,
) -> Plan:
    """The plan that converges `actual` (the in-scope part of a vhost, or None when the vhost
    does not exist) to `desired`, with the safety rules applied.

    `move_messages` turns queue replaces into moves that keep the messages; a move left
    unfinished (its holding queue still exists) is always part of the plan."""
    stats = stats or {}
    owned = scope.filter(actual) if actual is not None else Topology(vhost=desired.vhost)
    changes, unchanged = diff(desired, owned, stats)
    changes, unchanged = with_moves(changes, unchanged, desired, actual, stats, move_messages)
    if actual is None:
        changes.insert(0, Change("create", "vhost", desired.vhost, after={"name": desired.vhost}))
    warnings, errors = check_safety(changes, allow_data_loss)
    warnings += foreign_bindings_lost(actual, scope, changes)
    if actual is not None:
        warnings += foreign_policy_conflicts(desired, actual.policies, [p.name for p in owned.policies])
    return Plan(
        vhost=desired.vhost,
        changes=tuple(changes),
        scope=scope,
        unchanged=unchanged,
        warnings=tuple(warnings),
        errors=tuple(errors),
        fingerprint=state_fingerprint(actual, scope, stats, at_risk_queues(changes)),
        allow_data_loss=allow_data_loss,
        move_messages=move_messages,
    )


def diff(
    desired: Topology, actual: Topology, stats: Mapping[str, QueueStats] | None = None
) -> tuple[list[Change], int]:
    """Changes from `actual` to `desired` (both already in scope) and the count of no-ops."""
    stats = stats or {}
    changes: list[Change] = []
    unchanged = 0

    policies_now = {p.name: p for p in actual.policies}
    for policy in desired.policies:
        current_policy = policies_now.get(policy.name)
        if current_policy is None:
            changes.append(_create("policy", policy.name, policy))
        elif (reason := _policy_difference(current_policy, policy)) is not None:
            changes.append(
                Change(
                    "update",
                    "policy",
                    policy.name,
                    before=object_definition(current_policy),
                    after=object_definition(policy),
                    reason=reason,
                )
            )
        else:
            unchanged += 1
    wanted_policies = {p.name for p in desired.policies}
    changes.extend(_delete("policy", p.name, p) for p in actual.policies if p.name not in wanted_policies)

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

    access_changes, access_unchanged = diff_access(desired, actual)
    changes += access_changes
    unchanged += access_unchanged

    changes.sort(key=change_sort_key)
    return changes, unchanged


def diff_access(desired: Topology, actual: Topology) -> tuple[list[Change], int]:
    """Users, permissions and topic permissions: created, or updated in place; never deleted
    (a user leaves the scope when the spec stops naming it). A user's password is compared
    with the broker's salted hash, so no plan ever needs to hold the password."""
    changes: list[Change] = []
    unchanged = 0
    users_now = {u.name: u for u in actual.users}
    for user in desired.users:
        current_user = users_now.get(user.name)
        if current_user is None:
            changes.append(_create("user", user.name, user))
        elif (reason := _user_difference(current_user, user)) is not None:
            before = user_definition(current_user, with_hash=False)
            changes.append(
                Change("update", "user", user.name, before=before, after=object_definition(user), reason=reason)
            )
        else:
            unchanged += 1
    permissions_now = {p.user: p for p in actual.permissions}
    for permission in desired.permissions:
        current_permission = permissions_now.get(permission.user)
        if current_permission is None:
            changes.append(_create("permission", permission.user, permission))
        elif current_permission != permission:
            reason = "; ".join(_property_changes(_regexes(current_permission), _regexes(permission)))
            changes.append(_update("permission", permission.user, current_permission, permission, reason))
        else:
            unchanged += 1
    topics_now = {t.user: t for t in actual.topic_permissions}
    for topics in desired.topic_permissions:
        current_topics = topics_now.get(topics.user)
        if current_topics is None:
            changes.append(_create("topic_permission", topics.user, topics))
        elif current_topics != topics:
            reason = "; ".join(_property_changes(_by_exchange(current_topics), _by_exchange(topics)))
            changes.append(_update("topic_permission", topics.user, current_topics, topics, reason))
        else:
            unchanged += 1
    wanted_topics = {t.user for t in desired.topic_permissions}
    changes.extend(
        _delete("topic_permission", t.user, t) for t in actual.topic_permissions if t.user not in wanted_topics
    )
    return changes, unchanged


def _user_difference(current: User, wanted: User) -> str | None:
    reasons = _property_changes({"tags": current.tags}, {"tags": wanted.tags})
    secret = wanted.password.get_secret_value() if wanted.password is not None else None
    if secret is not None and not password_matches(secret, current.password_hash, current.hashing_algorithm):
        reasons.insert(0, PASSWORD_CHANGED)
    return "; ".join(reasons) or None


def _regexes(permission: Permission) -> dict[str, str]:
    return {"configure": permission.configure, "write": permission.write, "read": permission.read}


def _by_exchange(topics: TopicPermissions) -> dict[str, str]:
    return {exchange: f"write {write}, read {read}" for exchange, write, read in topics.exchanges}


def _update(kind: Any, name: str, before: AnyObject, after: AnyObject, reason: str) -> Change:
    return Change("update", kind, name, before=object_definition(before), after=object_definition(after), reason=reason)


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
    state: dict[str, Any] = {
        "vhost_exists": True,
        "objects": to_definitions(owned, include_vhost=False),
        "non_empty": [name for name in at_risk if stats.get(name, QueueStats()).messages > 0],
    }
    if scope.users:  # only then, so plans without `access:` keep their fingerprints
        state["access"] = access_definitions(owned)
    moving = holding_queues(actual, scope)
    if moving:  # only when present, so plans made without moves keep their fingerprints
        state["moving"] = moving
    return fingerprint(state)


def _create(kind: Any, name: str, obj: AnyObject) -> Change:
    return Change("create", kind, name, after=object_definition(obj))


def _delete(kind: Any, name: str, obj: AnyObject, stats: QueueStats | None = None) -> Change:
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


def _policy_difference(current: Policy, wanted: Policy) -> str | None:
    """Every property of a policy can change in place: the reason of an `update`."""
    reasons = _property_changes(
        {"pattern": current.pattern, "apply-to": current.apply_to, "priority": current.priority},
        {"pattern": wanted.pattern, "apply-to": wanted.apply_to, "priority": wanted.priority},
    )
    reasons += [f"definition.{r}" for r in _property_changes(current.definition, wanted.definition)]
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
