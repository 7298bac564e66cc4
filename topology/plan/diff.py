"""Compare the desired topology with the broker's and produce a plan.

Pure functions over plain data: the live shell reads the broker, this decides.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

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
    ObjectKind,
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
    users: tuple[User, ...] = (),
) -> Plan:
    """The plan that converges `actual` (the in-scope part of a vhost, or None when the vhost
    does not exist) to `desired`, with the safety rules applied.

    `move_messages` turns queue replaces into moves that keep the messages; a move left
    unfinished (its holding queue still exists) is always part of the plan. `users` are the
    in-scope users that exist when the vhost does not (users are cluster-wide)."""
    stats = stats or {}
    owned = scope.filter(actual) if actual is not None else Topology(vhost=desired.vhost, users=users)
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

    def queue_change(current: Queue, wanted: Queue) -> Change | None:
        reason = _queue_difference(current, wanted)
        if reason is None:
            return None
        return _replace("queue", wanted.name, current, wanted, reason, stats.get(wanted.name))

    policies = _diff_kind("policy", desired.policies, actual.policies, _policy_change)
    exchanges = _diff_kind("exchange", desired.exchanges, actual.exchanges, _exchange_change)
    queues = _diff_kind("queue", desired.queues, actual.queues, queue_change, stats)
    replaced_exchanges, replaced_queues = _replaced(exchanges), _replaced(queues)

    def binding_change(_: Binding, binding: Binding) -> Change | None:
        reason = _replaced_end(binding, replaced_exchanges, replaced_queues)
        return None if reason is None else _replace("binding", binding.label, binding, binding, reason)

    bindings = _diff_kind("binding", desired.bindings, actual.bindings, binding_change)
    changes, unchanged = _merged(policies, exchanges, queues, bindings, diff_access(desired, actual))
    changes.sort(key=change_sort_key)
    return changes, unchanged


def diff_access(desired: Topology, actual: Topology) -> tuple[list[Change], int]:
    """Users, permissions and topic permissions: created, or updated in place. A user the spec
    no longer names (still in scope through the ownership record) loses its permissions and
    topic permissions in the vhost; the user itself is deleted only when rabbitform created it
    and it has no permissions on another vhost. A user's password is compared with the
    broker's salted hash, so no plan ever needs to hold the password."""
    named = {user.name for user in desired.users}
    deletable = [u for u in actual.users if u.name in named or (u.created_by_spec and not u.other_vhosts)]
    return _merged(
        _diff_kind("user", desired.users, deletable, _user_change),
        _diff_kind("permission", desired.permissions, actual.permissions, _permission_change),
        _diff_kind("topic_permission", desired.topic_permissions, actual.topic_permissions, _topics_change),
    )


_T = TypeVar("_T", Policy, Exchange, Queue, Binding, User, Permission, TopicPermissions)
_KindDiff = tuple[list[Change], int]


def _diff_kind(
    kind: ObjectKind,
    desired: Sequence[_T],
    actual: Sequence[_T],
    change: Callable[[_T, _T], Change | None],
    stats: Mapping[str, QueueStats] | None = None,
    deletes: bool = True,
) -> _KindDiff:
    """Every kind the same way: create what is missing, `change` what is there (None when
    nothing differs), delete what is no longer wanted (with its counters, for queues)."""
    now = {obj.key: obj for obj in actual}
    changes: list[Change] = []
    unchanged = 0
    for wanted in desired:
        current = now.get(wanted.key)
        found = _create(kind, _label(wanted), wanted) if current is None else change(current, wanted)
        if found is None:
            unchanged += 1
        else:
            changes.append(found)
    if deletes:
        wanted_keys = {obj.key for obj in desired}
        gone = [obj for obj in actual if obj.key not in wanted_keys]
        changes.extend(_delete(kind, _label(obj), obj, (stats or {}).get(_label(obj))) for obj in gone)
    return changes, unchanged


def _merged(*kinds: _KindDiff) -> _KindDiff:
    return [change for changes, _ in kinds for change in changes], sum(unchanged for _, unchanged in kinds)


def _replaced(kind: _KindDiff) -> set[str]:
    return {change.name for change in kind[0] if change.action == "replace"}


def _label(obj: AnyObject) -> str:
    """What a change names: a binding by its label, everything else by its key."""
    return obj.label if isinstance(obj, Binding) else obj.key


def _policy_change(current: Policy, wanted: Policy) -> Change | None:
    reason = _policy_difference(current, wanted)
    return None if reason is None else _update("policy", wanted.name, current, wanted, reason)


def _exchange_change(current: Exchange, wanted: Exchange) -> Change | None:
    reason = _exchange_difference(current, wanted)
    return None if reason is None else _replace("exchange", wanted.name, current, wanted, reason)


def _user_change(current: User, wanted: User) -> Change | None:
    reason = _user_difference(current, wanted)
    if reason is None:
        return None
    before = user_definition(current, with_hash=False)
    return Change("update", "user", wanted.name, before=before, after=object_definition(wanted), reason=reason)


def _permission_change(current: Permission, wanted: Permission) -> Change | None:
    if current == wanted:
        return None
    reason = "; ".join(_property_changes(_regexes(current), _regexes(wanted)))
    return _update("permission", wanted.user, current, wanted, reason)


def _topics_change(current: TopicPermissions, wanted: TopicPermissions) -> Change | None:
    if current == wanted:
        return None
    reason = "; ".join(_property_changes(_by_exchange(current), _by_exchange(wanted)))
    return _update("topic_permission", wanted.user, current, wanted, reason)


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
