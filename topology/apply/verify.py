"""Did an apply take effect? Compare each applied change's intended end state with a fresh read.

Pure: a plan and the topology read after applying it in, the changes that did not land out.
"""

from __future__ import annotations

from dataclasses import replace

from topology.compile.definitions import (
    binding_from_definition,
    exchange_from_definition,
    permission_from_definition,
    policy_from_definition,
    queue_from_definition,
    topic_permissions_from_definition,
    user_from_definition,
)
from topology.compile.objects import Exchange, Policy, Queue, Topology, freeze_arguments
from topology.plan.model import Change, Plan


def unconverged(plan: Plan, actual: Topology | None) -> list[Change]:
    """The plan's changes whose end state the broker does not show."""
    if actual is None:
        return list(plan.changes)
    exchanges = {e.name: e for e in actual.exchanges}
    queues = {q.name: q for q in actual.queues}
    bindings = {b.key for b in actual.bindings}
    policies = {p.name: p for p in actual.policies}
    users = {u.name: u for u in actual.users}
    permissions = {p.user: p for p in actual.permissions}
    topics = {t.user: t for t in actual.topic_permissions}
    missing: list[Change] = []
    for change in plan.changes:
        if change.kind == "vhost":
            continue
        wanted = change.after if change.action != "delete" else None
        if change.kind == "exchange":
            ok = _matches(exchanges.get(change.name), exchange_from_definition(wanted) if wanted else None)
        elif change.kind == "queue":
            ok = _matches(queues.get(change.name), queue_from_definition(wanted) if wanted else None)
        elif change.kind == "user":  # the broker keeps the very hash apply sent
            ok = change.name not in users if wanted is None else users.get(change.name) == user_from_definition(wanted)
        elif change.kind == "permission":
            ok = permissions.get(change.name) == (permission_from_definition(wanted) if wanted else None)
        elif change.kind == "topic_permission":
            ok = topics.get(change.name) == (topic_permissions_from_definition(wanted) if wanted else None)
        elif change.kind == "policy":
            ok = _matches(policies.get(change.name), policy_from_definition(wanted) if wanted else None)
        else:
            definition = wanted or change.before or {}
            present = binding_from_definition(definition).key in bindings
            ok = present if wanted else not present
        if not ok:
            missing.append(change)
    return missing


def _matches(current: Exchange | Queue | Policy | None, wanted: Exchange | Queue | Policy | None) -> bool:
    """Equal objects, with argument types compared exactly (5000 is not "5000")."""
    if current is None or wanted is None:
        return current is wanted
    if isinstance(current, Policy) and isinstance(wanted, Policy):
        same_definition = freeze_arguments(current.definition) == freeze_arguments(wanted.definition)
        return same_definition and replace(current, definition={}) == replace(wanted, definition={})
    if isinstance(current, Policy) or isinstance(wanted, Policy):
        return False
    same_arguments = freeze_arguments(current.arguments) == freeze_arguments(wanted.arguments)
    return same_arguments and replace(current, arguments={}) == replace(wanted, arguments={})
