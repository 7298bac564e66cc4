"""What `destroy` may delete: what the spec declares, or what its ownership record lists.

Ownership is by name (a service's objects share its prefix), so a queue made by hand with a
service's prefix is in the spec's scope without being the spec's. `destroy` keeps to what the
spec compiles to now, plus everything of the services and store queues that only the record
still names (dropped from the spec: their exact objects can no longer be compiled, and the
record says rabbitform made them). Anything else in scope is left, with a warning.

Pure: the destroy plan's changes, the spec's compiled topology and scope, and the record's
scope in; the changes to keep and the warnings out.
"""

from __future__ import annotations

from dataclasses import replace

from topology.compile.definitions import binding_from_definition
from topology.compile.objects import Topology
from topology.plan.model import ACCESS_KINDS, Change
from topology.plan.scope import Scope


def recorded_only(spec_scope: Scope, recorded: Scope | None) -> Scope:
    """The part of the record's scope the spec no longer declares."""
    if recorded is None or recorded.organization != spec_scope.organization:
        return replace(spec_scope, services=(), store_queues=(), store_exchanges=(), users=())
    return replace(
        recorded,
        services=tuple(s for s in recorded.services if s not in spec_scope.services),
        store_queues=tuple(q for q in recorded.store_queues if q not in spec_scope.store_queues),
        store_exchanges=tuple(e for e in recorded.store_exchanges if e not in spec_scope.store_exchanges),
    )


def declared_only(changes: tuple[Change, ...], declared: Topology, dropped: Scope) -> tuple[list[Change], list[str]]:
    exchanges = {e.name for e in declared.exchanges}
    queues = {q.name for q in declared.queues}
    policies = {p.name for p in declared.policies}

    def queue_kept(name: str) -> bool:
        return name in queues or dropped.owns_queue(name)

    def exchange_kept(name: str) -> bool:
        return name in exchanges or dropped.owns_exchange(name)

    kept: list[Change] = []
    left: list[str] = []
    for change in changes:
        if change.kind in ACCESS_KINDS or change.kind == "vhost":
            ok = True
        elif change.kind == "queue":
            ok = queue_kept(change.name)
        elif change.kind == "exchange":
            ok = exchange_kept(change.name)
        elif change.kind == "policy":
            ok = change.name in policies or dropped.owns_policy(change.name)
        else:  # a binding goes with a kept end (the broker deletes it then anyway)
            binding = binding_from_definition(change.before or change.after or {})
            end = binding.destination
            destination = queue_kept(end) if binding.destination_type == "queue" else exchange_kept(end)
            ok = exchange_kept(binding.source) or destination
        if ok:
            kept.append(change)
        elif change.kind != "binding":
            left.append(
                f"{change.kind} {change.name} has the spec's names but the spec does not declare it and its "
                "ownership record does not list it: destroy leaves it (delete it by hand if it is yours)"
            )
    return kept, left
